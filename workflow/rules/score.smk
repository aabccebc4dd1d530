# Scores per classifier for the nominal test data and every feature-changing variation, in one
# job per classifier (the model is loaded once). Weight-only variations are never scored: the
# scan reuses the nominal scores.
rule score:
    input:
        model=get_model,
        events=score_events(),
        # the model record: a parameterised classifier's alpha inputs and their values
        info="results/models/{clf}.json",
    output:
        scores=expand(
            "results/scores/{{clf}}/{variation}.parquet", variation=SCORED_VARIATIONS
        ),
    log:
        "results/logs/score/{clf}.log",
    # the chain to the toys and the table before the plots (leaves of the DAG)
    priority: 1
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
        info="results/models/{clf}.json",
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
