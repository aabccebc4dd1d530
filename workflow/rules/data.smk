# Event table (built-in simulation or the user's files) and the train/test split.
if config["input"]["source"] == "simulate":

    rule simulate:
        output:
            events="results/data/events.parquet",
        log:
            "results/logs/simulate.log",
        benchmark:
            "results/benchmarks/simulate.tsv"
        conda:
            ENV
        threads: 1
        params:
            step="simulate",
            code=step_fingerprint("simulate"),
            settings=step_settings("simulate"),
            seed=config["seed"],
        script:
            "../scripts/run_step.py"

else:

    rule ingest:
        input:
            ingest_input_files,
        output:
            events="results/data/events.parquet",
        log:
            "results/logs/ingest.log",
        benchmark:
            "results/benchmarks/ingest.tsv"
        conda:
            ENV
        threads: 1
        params:
            step="ingest",
            code=step_fingerprint("ingest"),
            settings=step_settings("ingest"),
        script:
            "../scripts/run_step.py"


rule split:
    input:
        events="results/data/events.parquet",
    output:
        train="results/data/train.parquet",
        # the test events in input.partitions partitions (docs/scaling.md)
        tests=expand("results/data/test/{part}.parquet", part=PARTITIONS),
        sample="results/data/test_sample.parquet",
    log:
        "results/logs/split.log",
    benchmark:
        "results/benchmarks/split.tsv"
    conda:
        ENV
    threads: 1
    params:
        step="split",
        code=step_fingerprint("split"),
        settings=step_settings("split"),
        seed=config["seed"],
    script:
        "../scripts/run_step.py"
