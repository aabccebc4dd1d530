# The statistical model of each classifier: pyhf workspace and binning, profile-likelihood fit,
# covariance chi2 and the method-comparison rows (steps/fit.py).
rule workspace:
    input:
        unpack(get_workspace_inputs),
    output:
        workspace="results/fit/{clf}/workspace.json",
        binning="results/fit/{clf}/binning.json",
    log:
        "results/logs/fit/{clf}/workspace.log",
    benchmark:
        "results/benchmarks/workspace/{clf}.tsv"
    # the chain to the toys and the table before the plots (leaves of the DAG)
    priority: 1
    conda:
        ENV
    threads: 1
    params:
        step="workspace",
        code=step_fingerprint("workspace"),
        settings=step_settings("workspace"),
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
            category=CAT_FIT,
            subcategory="{clf}",
            labels={"classifier": "{clf}", "plot": "impacts"},
        ),
        pulls=report(
            "results/fit/{clf}/pulls.png",
            caption="../report/pulls.rst",
            category=CAT_FIT,
            subcategory="{clf}",
            labels={"classifier": "{clf}", "plot": "pulls"},
        ),
        correlation=report(
            "results/fit/{clf}/correlation.png",
            caption="../report/correlation.rst",
            category=CAT_FIT,
            subcategory="{clf}",
            labels={"classifier": "{clf}", "plot": "correlation matrix"},
        ),
        prefit=report(
            "results/fit/{clf}/prefit.png",
            caption="../report/prefit.rst",
            category=CAT_FIT,
            subcategory="{clf}",
            labels={"classifier": "{clf}", "plot": "pre-fit distribution"},
        ),
        postfit=report(
            "results/fit/{clf}/postfit.png",
            caption="../report/postfit.rst",
            category=CAT_FIT,
            subcategory="{clf}",
            labels={"classifier": "{clf}", "plot": "post-fit distribution"},
        ),
        nll_scan=report(
            "results/fit/{clf}/nll_scan.png",
            caption="../report/nll_scan.rst",
            category=CAT_FIT,
            subcategory="{clf}",
            labels={"classifier": "{clf}", "plot": "likelihood scan"},
        ),
        pdfs=[
            report(
                f"results/fit/{{clf}}/{plot}.pdf",
                caption="../report/vector.rst",
                category=CAT_FIT,
                subcategory="{clf}",
                labels={"classifier": "{clf}", "plot": f"{plot} (PDF)"},
            )
            for plot in [*FIT_PLOTS, "nll_scan"]
        ],
    log:
        "results/logs/fit/{clf}/fit.log",
    benchmark:
        "results/benchmarks/fit/{clf}.tsv"
    # the chain to the toys and the table before the plots (leaves of the DAG)
    priority: 1
    conda:
        ENV
    threads: 1
    params:
        step="fit",
        code=step_fingerprint("fit"),
        settings=step_settings("fit"),
    script:
        "../scripts/run_step.py"


rule chi2:
    input:
        unpack(get_chi2_inputs),
    output:
        chi2="results/fit/{clf}/chi2.json",
    log:
        "results/logs/fit/{clf}/chi2.log",
    benchmark:
        "results/benchmarks/chi2/{clf}.tsv"
    conda:
        ENV
    threads: 1
    params:
        step="chi2",
        code=step_fingerprint("chi2"),
        settings=step_settings("chi2"),
    script:
        "../scripts/run_step.py"


rule methods:
    input:
        unpack(get_method_inputs),
    output:
        methods="results/fit/{clf}/methods.parquet",
    log:
        "results/logs/fit/{clf}/methods.log",
    benchmark:
        "results/benchmarks/methods/{clf}.tsv"
    conda:
        ENV
    threads: 1
    params:
        step="methods",
        code=step_fingerprint("methods"),
        settings=step_settings("methods"),
    script:
        "../scripts/run_step.py"
