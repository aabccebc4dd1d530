# The final uncertainty table (one row per classifier and working point) and the run record.
rule table:
    input:
        unpack(get_table_inputs),
    output:
        parquet="results/tables/uncertainties.parquet",
        csv=report(
            "results/tables/uncertainties.csv",
            caption="../report/table.rst",
            category="Uncertainty table",
            labels={"table": "uncertainties (CSV)"},
        ),
        md="results/tables/uncertainties.md",
        tex="results/tables/uncertainties.tex",
        classifiers="results/tables/classifiers.parquet",
        classifiers_csv=report(
            "results/tables/classifiers.csv",
            caption="../report/classifiers.rst",
            category="Uncertainty table",
            labels={"table": "classifiers (CSV)"},
        ),
        classifiers_md="results/tables/classifiers.md",
        classifiers_tex="results/tables/classifiers.tex",
    log:
        "results/logs/table.log",
    conda:
        ENV
    threads: 1
    params:
        step="table",
        code=step_fingerprint("table"),
        settings=step_settings("table"),
    script:
        "../scripts/run_step.py"


rule diagnostics:
    input:
        unpack(get_diagnostics_inputs),
    output:
        diagnostics="results/diagnostics.json",
    log:
        "results/logs/diagnostics.log",
    conda:
        ENV
    threads: 1
    params:
        step="diagnostics",
        code=step_fingerprint("diagnostics"),
        settings=step_settings("diagnostics"),
    script:
        "../scripts/run_step.py"


rule provenance:
    output:
        provenance="results/provenance.json",
    log:
        "results/logs/provenance.log",
    conda:
        ENV
    threads: 1
    params:
        step="provenance",
        code=step_fingerprint("provenance"),
        settings=step_settings("provenance"),
    script:
        "../scripts/run_step.py"
