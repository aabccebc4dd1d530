# Pseudo-experiments: scattered over chunks of toys.chunk_size, gathered into a coverage table
# per classifier (steps/toys.py).
rule toys:
    input:
        unpack(get_toy_inputs),
    output:
        toys="results/fit/{clf}/toys/{mode}_{chunk}.parquet",
    log:
        "results/logs/fit/{clf}/toys_{mode}_{chunk}.log",
    benchmark:
        "results/benchmarks/toys/{clf}/{mode}_{chunk}.tsv"
    # the chain to the toys and the table before the plots (leaves of the DAG)
    priority: 1
    conda:
        ENV
    threads: 1
    params:
        step="toys",
        toys_in_chunk=toy_chunk_count,
        code=step_fingerprint("toys"),
        settings=step_settings("toys"),
        seed=config["seed"],
    script:
        "../scripts/run_step.py"


rule toys_summary:
    input:
        toys=toy_chunks,
    output:
        parquet="results/fit/{clf}/coverage.parquet",
        csv=report(
            "results/fit/{clf}/coverage.csv",
            caption="../report/coverage.rst",
            category=CAT_TABLES,
            subcategory="Tables for download (CSV)",
            labels={"table": "coverage of {clf} (CSV download)"},
        ),
        plot=report(
            "results/fit/{clf}/coverage.png",
            caption="../report/coverage_plot.rst",
            category=CAT_FIT,
            subcategory="{clf}",
            labels={"classifier": "{clf}", "plot": "coverage per method"},
        ),
        plot_pdf=report(
            "results/fit/{clf}/coverage.pdf",
            caption="../report/vector.rst",
            category=CAT_FIT,
            subcategory="{clf}",
            labels={"classifier": "{clf}", "plot": "coverage (PDF)"},
        ),
        md="results/fit/{clf}/coverage.md",
        tex="results/fit/{clf}/coverage.tex",
    log:
        "results/logs/fit/{clf}/toys_summary.log",
    benchmark:
        "results/benchmarks/toys_summary/{clf}.tsv"
    conda:
        ENV
    threads: 1
    params:
        step="toys_summary",
        code=step_fingerprint("toys_summary"),
        settings=step_settings("toys_summary"),
    script:
        "../scripts/run_step.py"
