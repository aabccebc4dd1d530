# Threshold scan per classifier: S, B per variation, AMS, and every dmu (docs/scan.md).
rule scan:
    input:
        unpack(get_scan_inputs),
    output:
        scan="results/scans/{clf}.parquet",
    log:
        "results/logs/scan/{clf}.log",
    benchmark:
        "results/benchmarks/scan/{clf}.tsv"
    # the chain to the toys and the table before the plots (leaves of the DAG)
    priority: 1
    conda:
        ENV
    threads: 1
    params:
        step="scan",
        code=step_fingerprint("scan"),
        settings=step_settings("scan"),
    script:
        "../scripts/run_step.py"
