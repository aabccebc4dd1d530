# The statistical model: pyhf workspace, profile-likelihood fit, covariance chi2, toys
# (scatter over chunks, gather into a coverage table) and the method-comparison rows.
rule workspace:
    input:
        unpack(get_workspace_inputs),
    output:
        workspace="results/fit/{clf}/workspace.json",
        binning="results/fit/{clf}/binning.json",
    log:
        "results/logs/fit/{clf}/workspace.log",
    conda:
        ENV
    threads: 1
    params:
        step="workspace",
        code=code_fingerprint("workspace"),
        settings={"fit": config["fit"], "systematics": config["systematics"]},
    script:
        "../scripts/run_step.py"


rule fit:
    input:
        workspace="results/fit/{clf}/workspace.json",
        binning="results/fit/{clf}/binning.json",
    output:
        fit="results/fit/{clf}/fit.json",
        impacts=report(
            "results/fit/{clf}/impacts.png",
            caption="../report/impacts.rst",
            category="{clf}",
            subcategory="Profile-likelihood fit",
            labels={"classifier": "{clf}", "plot": "impacts"},
        ),
        pulls=report(
            "results/fit/{clf}/pulls.png",
            caption="../report/pulls.rst",
            category="{clf}",
            subcategory="Profile-likelihood fit",
            labels={"classifier": "{clf}", "plot": "pulls"},
        ),
        correlation=report(
            "results/fit/{clf}/correlation.png",
            caption="../report/correlation.rst",
            category="{clf}",
            subcategory="Profile-likelihood fit",
            labels={"classifier": "{clf}", "plot": "correlation matrix"},
        ),
        prefit=report(
            "results/fit/{clf}/prefit.png",
            caption="../report/distribution.rst",
            category="{clf}",
            subcategory="Profile-likelihood fit",
            labels={"classifier": "{clf}", "plot": "pre-fit distribution"},
        ),
        postfit=report(
            "results/fit/{clf}/postfit.png",
            caption="../report/distribution.rst",
            category="{clf}",
            subcategory="Profile-likelihood fit",
            labels={"classifier": "{clf}", "plot": "post-fit distribution"},
        ),
        pdfs=expand("results/fit/{{clf}}/{plot}.pdf", plot=FIT_PLOTS),
    log:
        "results/logs/fit/{clf}/fit.log",
    conda:
        ENV
    threads: 1
    params:
        step="fit",
        code=code_fingerprint("fit"),
        settings=config["fit"],
    script:
        "../scripts/run_step.py"


rule chi2:
    input:
        unpack(get_chi2_inputs),
    output:
        chi2="results/fit/{clf}/chi2.json",
    log:
        "results/logs/fit/{clf}/chi2.log",
    conda:
        ENV
    threads: 1
    params:
        step="chi2",
        code=code_fingerprint("chi2"),
        settings=config["chi2"],
    script:
        "../scripts/run_step.py"


rule toys:
    input:
        workspace="results/fit/{clf}/workspace.json",
    output:
        toys="results/fit/{clf}/toys/{mode}_{chunk}.parquet",
    log:
        "results/logs/fit/{clf}/toys_{mode}_{chunk}.log",
    conda:
        ENV
    threads: 1
    params:
        step="toys",
        code=code_fingerprint("toys"),
        settings={"toys": config["toys"], "seed": config["seed"]},
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
            category="{clf}",
            subcategory="Coverage",
            labels={"classifier": "{clf}", "table": "coverage per method"},
        ),
        md="results/fit/{clf}/coverage.md",
        tex="results/fit/{clf}/coverage.tex",
    log:
        "results/logs/fit/{clf}/toys_summary.log",
    conda:
        ENV
    threads: 1
    params:
        step="toys_summary",
        code=code_fingerprint("toys_summary"),
    script:
        "../scripts/run_step.py"


rule methods:
    input:
        unpack(get_method_inputs),
    output:
        methods="results/fit/{clf}/methods.parquet",
    log:
        "results/logs/fit/{clf}/methods.log",
    conda:
        ENV
    threads: 1
    params:
        step="methods",
        code=code_fingerprint("methods"),
        settings={"fit": config["fit"], "chi2": config["chi2"], "scan": config["scan"]},
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
        code=code_fingerprint("score_data"),
        features=config["features"],
    script:
        "../scripts/run_step.py"
