# One job per systematic variation and test partition; weight-only variations keep only
# event_id and weight, feature-changing ones carry the shifted features for re-scoring.
rule vary:
    input:
        test="results/data/test/{part}.parquet",
    output:
        events="results/variations/{variation}/{part}.parquet",
    log:
        "results/logs/vary/{variation}/{part}.log",
    benchmark:
        "results/benchmarks/vary/{variation}/{part}.tsv"
    priority: 2
    conda:
        ENV
    threads: 1
    params:
        step="vary",
        code=step_fingerprint("vary"),
        settings=step_settings("vary"),
        seed=config["seed"],
    script:
        "../scripts/run_step.py"
