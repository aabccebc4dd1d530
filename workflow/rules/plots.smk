# Plots for the report: summaries over classifiers, per-classifier breakdowns, and the
# counting-experiment statistics studies (docs/notebooks.md).
rule plots_summary:
    input:
        unpack(get_summary_plot_inputs),
    output:
        ams_png=report(
            "results/plots/ams.png",
            caption="../report/ams.rst",
            category="Summary",
            labels={"plot": "AMS vs threshold"},
        ),
        ams_pdf="results/plots/ams.pdf",
        roc_png=report(
            "results/plots/roc.png",
            caption="../report/roc.rst",
            category="Summary",
            labels={"plot": "ROC curves"},
        ),
        roc_pdf="results/plots/roc.pdf",
    log:
        "results/logs/plots/summary.log",
    conda:
        ENV
    threads: 1
    params:
        step="plots_summary",
        code=step_fingerprint("plots_summary"),
        settings=step_settings("plots_summary"),
    script:
        "../scripts/run_step.py"


rule plots_classifier:
    input:
        scan="results/scans/{clf}.parquet",
        scores=expand(
            "results/scores/{{clf}}/{variation}.parquet", variation=SCORED_VARIATIONS
        ),
    output:
        breakdown_png=report(
            "results/plots/{clf}/dmu_breakdown.png",
            caption="../report/dmu_breakdown.rst",
            category="{clf}",
            labels={"classifier": "{clf}", "plot": "dmu breakdown vs threshold"},
        ),
        breakdown_pdf="results/plots/{clf}/dmu_breakdown.pdf",
        variations_png=report(
            "results/plots/{clf}/score_variations.png",
            caption="../report/score_variations.rst",
            category="{clf}",
            labels={
                "classifier": "{clf}",
                "plot": "score distributions per variation",
            },
        ),
        variations_pdf="results/plots/{clf}/score_variations.pdf",
        projection_png=report(
            "results/plots/{clf}/lumi_projection.png",
            caption="../report/lumi_projection.rst",
            category="{clf}",
            labels={"classifier": "{clf}", "plot": "dmu vs luminosity scale"},
        ),
        projection_pdf="results/plots/{clf}/lumi_projection.pdf",
    log:
        "results/logs/plots/{clf}.log",
    conda:
        ENV
    threads: 1
    params:
        step="plots_classifier",
        code=step_fingerprint("plots_classifier"),
        settings=step_settings("plots_classifier"),
    script:
        "../scripts/run_step.py"


rule studies:
    output:
        table=report(
            "results/studies/linear_propagation.csv",
            caption="../report/studies.rst",
            category="Statistics studies",
            labels={"study": "linear propagation table"},
        ),
        md="results/studies/linear_propagation.md",
        sigma_cases="results/studies/sigma_mu_configurations.csv",
        summary="results/studies/studies_summary.json",
        pdfs=expand("results/studies/{plot}.pdf", plot=STUDY_PLOTS),
        plots=[
            report(
                f"results/studies/{plot}.png",
                caption="../report/studies.rst",
                category="Statistics studies",
                labels={"study": plot},
            )
            for plot in STUDY_PLOTS
        ],
    log:
        "results/logs/studies.log",
    conda:
        ENV
    threads: 1
    params:
        step="studies",
        code=step_fingerprint("studies"),
        settings=step_settings("studies"),
    script:
        "../scripts/run_step.py"
