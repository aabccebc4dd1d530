# The final uncertainty table (one row per classifier and working point) and the run record.
rule table:
    input:
        unpack(get_table_inputs),
    output:
        parquet="results/tables/uncertainties.parquet",
        csv=report(
            "results/tables/uncertainties.csv",
            caption="../report/table.rst",
            category=CAT_TABLES,
            subcategory="Tables for download (CSV)",
            labels={"table": "full uncertainty table (CSV download)"},
        ),
        md="results/tables/uncertainties.md",
        tex="results/tables/uncertainties.tex",
        classifiers="results/tables/classifiers.parquet",
        classifiers_csv=report(
            "results/tables/classifiers.csv",
            caption="../report/classifiers.rst",
            category=CAT_TABLES,
            subcategory="Tables for download (CSV)",
            labels={"table": "classifier summary (CSV download)"},
        ),
        classifiers_md="results/tables/classifiers.md",
        classifiers_tex="results/tables/classifiers.tex",
    log:
        "results/logs/table.log",
    benchmark:
        "results/benchmarks/table.tsv"
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
    benchmark:
        "results/benchmarks/diagnostics.tsv"
    conda:
        ENV
    threads: 1
    params:
        step="diagnostics",
        code=step_fingerprint("diagnostics"),
        settings=step_settings("diagnostics"),
    script:
        "../scripts/run_step.py"


rule report_pages:
    input:
        unpack(get_report_inputs),
    output:
        **{
            f"{name}_html": report(
                f"results/tables/{name}.html",
                caption=f"../report/table_{name}.rst",
                category=CAT_TABLES,
                subcategory="Rendered tables",
                labels={"table": REPORT_TABLE_TITLES[name]},
            )
            for name in REPORT_TABLES
        },
        **{
            f"{name}_{fmt}": f"results/tables/{name}.{fmt}"
            for name in REPORT_TABLES
            for fmt in ("md", "tex")
        },
        summary=report(
            "results/report/summary.html",
            caption="../report/summary.rst",
            category=CAT_SUMMARY,
            labels={"figure": "summary (the first page)"},
        ),
        provenance_page=report(
            "results/report/provenance.html",
            caption="../report/provenance.rst",
            category=CAT_PROVENANCE,
            labels={"page": "config, versions, commit"},
        ),
        compact_csv="results/tables/compact.csv",
        macros="results/tables/macros.tex",
    log:
        "results/logs/report_pages.log",
    benchmark:
        "results/benchmarks/report_pages.tsv"
    conda:
        ENV
    threads: 1
    params:
        step="report_pages",
        code=step_fingerprint("report_pages"),
        settings=step_settings("report_pages"),
    script:
        "../scripts/run_step.py"


rule hepdata:
    input:
        unpack(get_hepdata_inputs),
    output:
        submission="results/hepdata/submission.tar.gz",
    log:
        "results/logs/hepdata.log",
    benchmark:
        "results/benchmarks/hepdata.tsv"
    conda:
        ENV
    threads: 1
    params:
        step="hepdata",
        code=step_fingerprint("hepdata"),
        settings=step_settings("hepdata"),
    script:
        "../scripts/run_step.py"


rule provenance:
    output:
        provenance="results/provenance.json",
    log:
        "results/logs/provenance.log",
    benchmark:
        "results/benchmarks/provenance.tsv"
    conda:
        ENV
    threads: 1
    params:
        step="provenance",
        code=step_fingerprint("provenance"),
        settings=step_settings("provenance"),
    script:
        "../scripts/run_step.py"
