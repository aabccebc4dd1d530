# Scores per classifier for the nominal test data and every feature-changing variation.
# Weight-only variations never get a score job: the scan reuses the nominal scores.
rule score:
    input:
        model=get_model,
        events=get_score_events,
    output:
        scores="results/scores/{clf}/{variation}.parquet",
    log:
        "results/logs/score/{clf}/{variation}.log",
    wildcard_constraints:
        variation=_alternatives(SCORED_VARIATIONS),
    conda:
        ENV
    threads: config["training"]["threads"]
    params:
        step="score",
        code=code_fingerprint("score"),
        features=config["features"],
    script:
        "../scripts/run_step.py"
