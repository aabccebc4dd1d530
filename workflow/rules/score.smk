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
        code=step_fingerprint("score"),
        settings=step_settings("score"),
    script:
        "../scripts/run_step.py"


rule score_data:
    input:
        model=get_model,
        events=lambda wildcards: config["fit"]["data"]["path"],
    output:
        scores="results/scores/{clf}/data.parquet",
    log:
        "results/logs/score/{clf}/data.log",
    conda:
        ENV
    threads: config["training"]["threads"]
    params:
        step="score_data",
        code=step_fingerprint("score_data"),
        settings=step_settings("score_data"),
    script:
        "../scripts/run_step.py"
