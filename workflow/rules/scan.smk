# Threshold scan per classifier: S, B per variation, AMS, and every dmu of SPEC section 5.
rule scan:
    input:
        unpack(get_scan_inputs),
    output:
        scan="results/scans/{clf}.parquet",
    log:
        "results/logs/scan/{clf}.log",
    conda:
        ENV
    threads: 1
    params:
        step="scan",
        code=code_fingerprint("scan"),
        settings={"scan": config["scan"], "systematics": config["systematics"]},
    script:
        "../scripts/run_step.py"
