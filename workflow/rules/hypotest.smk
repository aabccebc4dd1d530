# Toy-based hypothesis tests of each toyed classifier's fit workspace (steps/hypotest.py):
# CLs at the asymptotic 95 % CL limit and the discovery p-value, scattered over chunks of toys
# and merged exactly (the chunks hold counts).
rule hypotest:
    input:
        workspace="results/fit/{clf}/workspace.json",
        fit="results/fit/{clf}/fit.json",
    output:
        counts="results/fit/{clf}/hypotest/{chunk}.parquet",
    log:
        "results/logs/fit/{clf}/hypotest_{chunk}.log",
    benchmark:
        "results/benchmarks/hypotest/{clf}/{chunk}.tsv"
    conda:
        ENV
    threads: 1
    params:
        step="hypotest",
        toys_in_chunk=hypotest_chunk_toys,
        code=step_fingerprint("hypotest"),
        settings=step_settings("hypotest"),
        seed=config["seed"],
    script:
        "../scripts/run_step.py"


rule hypotest_summary:
    input:
        counts=hypotest_chunks,
        fit="results/fit/{clf}/fit.json",
    output:
        parquet="results/fit/{clf}/hypotest.parquet",
        csv=report(
            "results/fit/{clf}/hypotest.csv",
            caption="../report/hypotest.rst",
            category=CAT_FIT,
            subcategory="{clf}",
            labels={"classifier": "{clf}", "plot": "toy-based CLs and p0 (CSV)"},
        ),
        md="results/fit/{clf}/hypotest.md",
        tex="results/fit/{clf}/hypotest.tex",
    log:
        "results/logs/fit/{clf}/hypotest_summary.log",
    benchmark:
        "results/benchmarks/hypotest_summary/{clf}.tsv"
    conda:
        ENV
    threads: 1
    params:
        step="hypotest_summary",
        code=step_fingerprint("hypotest_summary"),
        settings=step_settings("hypotest_summary"),
    script:
        "../scripts/run_step.py"
