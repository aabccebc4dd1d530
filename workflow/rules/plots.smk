# Plots for the report: summaries over classifiers, per-classifier breakdowns and validation
# figures, and the counting-experiment statistics studies (docs/notebooks.md).
rule plots_summary:
    input:
        unpack(get_summary_plot_inputs),
        unpack(get_summary_fit_inputs),
    output:
        ams_png=report(
            "results/plots/ams.png",
            caption="../report/ams.rst",
            category=CAT_SUMMARY,
            labels={"figure": "AMS vs threshold (statistical only)"},
        ),
        ams_pdf=report(
            "results/plots/ams.pdf",
            caption="../report/vector.rst",
            category=CAT_SUMMARY,
            labels={"figure": "AMS vs threshold (PDF)"},
        ),
        significance_png=report(
            "results/plots/significance.png",
            caption="../report/significance.rst",
            category=CAT_SUMMARY,
            labels={"figure": "significance with systematics vs threshold"},
        ),
        significance_pdf=report(
            "results/plots/significance.pdf",
            caption="../report/vector.rst",
            category=CAT_SUMMARY,
            labels={"figure": "significance with systematics (PDF)"},
        ),
        roc_png=report(
            "results/plots/roc.png",
            caption="../report/roc.rst",
            category=CAT_SUMMARY,
            labels={"figure": "ROC curves"},
        ),
        roc_pdf=report(
            "results/plots/roc.pdf",
            caption="../report/vector.rst",
            category=CAT_SUMMARY,
            labels={"figure": "ROC curves (PDF)"},
        ),
    log:
        "results/logs/plots/summary.log",
    benchmark:
        "results/benchmarks/plots_summary.tsv"
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
        unpack(get_classifier_plot_inputs),
        scan="results/scans/{clf}.parquet",
        hist="results/hists/{clf}.parquet",
        model=get_model,
        info="results/models/{clf}.json",
        train="results/data/train.parquet",
        sample="results/data/test_sample.parquet",
    output:
        breakdown_png=report(
            "results/plots/{clf}/dmu_breakdown.png",
            caption="../report/dmu_breakdown.rst",
            category=CAT_CLASSIFIERS,
            subcategory="{clf}",
            labels={
                "classifier": "{clf}",
                "figure": "uncertainty breakdown vs threshold",
            },
        ),
        breakdown_pdf=report(
            "results/plots/{clf}/dmu_breakdown.pdf",
            caption="../report/vector.rst",
            category=CAT_CLASSIFIERS,
            subcategory="{clf}",
            labels={"classifier": "{clf}", "figure": "uncertainty breakdown (PDF)"},
        ),
        variations_png=report(
            "results/plots/{clf}/score_variations.png",
            caption="../report/score_variations.rst",
            category=CAT_CLASSIFIERS,
            subcategory="{clf}",
            labels={
                "classifier": "{clf}",
                "figure": "score distributions per variation",
            },
        ),
        variations_pdf=report(
            "results/plots/{clf}/score_variations.pdf",
            caption="../report/vector.rst",
            category=CAT_CLASSIFIERS,
            subcategory="{clf}",
            labels={"classifier": "{clf}", "figure": "score distributions (PDF)"},
        ),
        projection_png=report(
            "results/plots/{clf}/lumi_projection.png",
            caption="../report/lumi_projection.rst",
            category=CAT_CLASSIFIERS,
            subcategory="{clf}",
            labels={"classifier": "{clf}", "figure": "uncertainty vs luminosity"},
        ),
        projection_pdf=report(
            "results/plots/{clf}/lumi_projection.pdf",
            caption="../report/vector.rst",
            category=CAT_CLASSIFIERS,
            subcategory="{clf}",
            labels={
                "classifier": "{clf}",
                "figure": "uncertainty vs luminosity (PDF)",
            },
        ),
        mc_counts_png=report(
            "results/plots/{clf}/mc_counts.png",
            caption="../report/mc_counts.rst",
            category=CAT_CLASSIFIERS,
            subcategory="{clf}",
            labels={
                "classifier": "{clf}",
                "figure": "raw and effective MC counts per bin",
            },
        ),
        mc_counts_pdf=report(
            "results/plots/{clf}/mc_counts.pdf",
            caption="../report/vector.rst",
            category=CAT_CLASSIFIERS,
            subcategory="{clf}",
            labels={"classifier": "{clf}", "figure": "MC counts per bin (PDF)"},
        ),
        overtraining_png=report(
            "results/plots/{clf}/overtraining.png",
            caption="../report/overtraining.rst",
            category=CAT_CLASSIFIERS,
            subcategory="{clf}",
            labels={"classifier": "{clf}", "figure": "train vs test scores (KS test)"},
        ),
        overtraining_pdf=report(
            "results/plots/{clf}/overtraining.pdf",
            caption="../report/vector.rst",
            category=CAT_CLASSIFIERS,
            subcategory="{clf}",
            labels={"classifier": "{clf}", "figure": "train vs test scores (PDF)"},
        ),
    log:
        "results/logs/plots/{clf}.log",
    benchmark:
        "results/benchmarks/plots_classifier/{clf}.tsv"
    conda:
        ENV
    threads: 1
    params:
        step="plots_classifier",
        code=step_fingerprint("plots_classifier"),
        settings=step_settings("plots_classifier"),
        seed=config["seed"],
    script:
        "../scripts/run_step.py"


rule studies:
    output:
        table=report(
            "results/studies/linear_propagation.csv",
            caption="../report/studies.rst",
            category=CAT_STUDIES,
            labels={"study": "linear propagation table (CSV)"},
        ),
        md="results/studies/linear_propagation.md",
        sigma_cases="results/studies/sigma_mu_configurations.csv",
        summary="results/studies/studies_summary.json",
        pdfs=expand("results/studies/{plot}.pdf", plot=STUDY_PLOTS),
        plots=[
            report(
                f"results/studies/{plot}.png",
                caption=f"../report/{plot}.rst",
                category=CAT_STUDIES,
                labels={"study": STUDY_TITLES[plot]},
            )
            for plot in STUDY_PLOTS
        ],
    log:
        "results/logs/studies.log",
    benchmark:
        "results/benchmarks/studies.tsv"
    conda:
        ENV
    threads: 1
    params:
        step="studies",
        code=step_fingerprint("studies"),
        settings=step_settings("studies"),
    script:
        "../scripts/run_step.py"
