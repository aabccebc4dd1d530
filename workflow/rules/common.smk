# Helpers shared by the workflow: config validation, wildcard sets, input functions, and the
# params every rule passes (step name, code fingerprint, the config sections its step reads).
import systpipe
from systpipe.config import (
    read_config_file,
    toy_chunk_counts,
    toy_chunk_size,
    validate_config,
)
from systpipe.models import model_file_extension
from systpipe.partitions import partition_count
from systpipe.steps import STEPS
from systpipe.systematics import feature_variations, variation_names, weight_variations

# Snakemake has already read the config files with its own YAML loader (and, for a file with
# __use_yte__, run its YTE templates): re-read each one strictly, so that duplicate keys,
# !!python tags and __use_yte__ stop the workflow naming the file and line (README, Security).
for _configfile in workflow.configfiles:
    read_config_file(_configfile)

# One validation with messages that name the bad key and what was expected: the schema (the
# package's copy, with the enums of the registered extensions filled in), defaults, semantics.
config.update(validate_config(config, source="config"))

ENV = "../envs/systpipe.yaml"
CLASSIFIERS = [c["name"] for c in config["classifiers"]]
SYSTEMATICS = config["systematics"]
VARIATIONS = variation_names(SYSTEMATICS)
FEATURE_VARIATIONS = feature_variations(SYSTEMATICS)
WEIGHT_VARIATIONS = weight_variations(SYSTEMATICS)
SCORED_VARIATIONS = ["nominal", *FEATURE_VARIATIONS]
FIT_ENABLED = config["fit"]["enabled"]
# the test partitions, named 0..P-1 (input.partitions; docs/scaling.md)
PARTITIONS = [str(p) for p in range(partition_count(config))]
TOY_CLASSIFIERS = config["toys"].get("classifiers", CLASSIFIERS)
FIT_PLOTS = ["impacts", "pulls", "correlation", "prefit", "postfit"]


def _alternatives(names):
    # Regex alternatives for wildcard constraints; "(?!x)x" matches nothing.
    return "|".join(names) if names else "(?!x)x"


def step_fingerprint(name):
    # Hash of the step module's source and its import closure: editing any code the step
    # uses re-runs it (Snakemake itself only sees the adapter script).
    return STEPS[name].fingerprint()


def toy_chunk_count(wildcards):
    # the toys of one chunk; a job's settings leave out toys.n_toys (steps/toys.py)
    return toy_chunk_size(config["toys"], wildcards.mode, int(wildcards.chunk))


def step_settings(name, **only):
    # Exactly the config sections the step reads; the step fails loudly on any other.
    return STEPS[name].settings_from(config, **only)


def classifier_type(name):
    return next(c["type"] for c in config["classifiers"] if c["name"] == name)


def model_path(name):
    return f"results/models/{name}.{model_file_extension(classifier_type(name))}"


def get_model(wildcards):
    return model_path(wildcards.clf)


def get_partition_variations(wildcards):
    # every variation of one test partition, for the score rule's histograms
    return {
        f"variation__{v}": f"results/variations/{v}/{wildcards.part}.parquet"
        for v in VARIATIONS
        if v != "nominal"
    }


def get_scan_inputs(wildcards):
    # the merged fine histograms of a classifier (and the paired sums for the shift errors)
    return {
        "hist": f"results/hists/{wildcards.clf}.parquet",
        "pairs": f"results/hists/{wildcards.clf}.pairs.parquet",
    }


def get_table_inputs(wildcards):
    inputs = {f"scan__{c}": f"results/scans/{c}.parquet" for c in CLASSIFIERS}
    inputs |= {f"info__{c}": f"results/models/{c}.json" for c in CLASSIFIERS}
    if FIT_ENABLED:
        inputs |= {
            f"methods__{c}": f"results/fit/{c}/methods.parquet" for c in CLASSIFIERS
        }
    return inputs


def get_diagnostics_inputs(wildcards):
    inputs = {"table": "results/tables/uncertainties.parquet"}
    if FIT_ENABLED:
        inputs |= {f"fit__{c}": f"results/fit/{c}/fit.json" for c in CLASSIFIERS}
        inputs |= {
            f"workspace__{c}": f"results/fit/{c}/workspace.json" for c in CLASSIFIERS
        }
        inputs |= {
            f"binning__{c}": f"results/fit/{c}/binning.json" for c in CLASSIFIERS
        }
        inputs |= {
            f"coverage__{c}": f"results/fit/{c}/coverage.parquet"
            for c in TOY_CLASSIFIERS
        }
    if HYPOTEST_ENABLED:
        inputs |= {
            f"hypotest__{c}": f"results/fit/{c}/hypotest.parquet"
            for c in TOY_CLASSIFIERS
        }
    return inputs


def print_diagnostics():
    # The run's last words: the diagnostics summary; with diagnostics.fail_on the run fails
    # (after every output is written, so nothing is lost).
    import json
    from pathlib import Path

    from systpipe.diagnostics import should_fail, summary_lines

    path = Path("results/diagnostics.json")
    if not path.is_file():
        return
    record = json.loads(path.read_text())
    print("\n".join(summary_lines(record)))
    fail_on = config["diagnostics"]["fail_on"]
    if should_fail(record, fail_on):
        raise SystemExit(
            f"diagnostics.fail_on: {fail_on}: the run has findings of that severity"
        )


def get_data_scores(wildcards):
    # Scored data events for the fits, when fit.data.source is "file" (else Asimov data).
    if config["fit"]["data"]["source"] != "file":
        return {}
    return {"data_scores": f"results/scores/{wildcards.clf}/data.parquet"}


def get_workspace_inputs(wildcards):
    return (
        get_scan_inputs(wildcards)
        | {"scan": f"results/scans/{wildcards.clf}.parquet"}
        | get_data_scores(wildcards)
    )


def get_chi2_inputs(wildcards):
    return (
        get_scan_inputs(wildcards)
        | {"binning": f"results/fit/{wildcards.clf}/binning.json"}
        | get_data_scores(wildcards)
    )


def get_method_inputs(wildcards):
    fit_dir = f"results/fit/{wildcards.clf}"
    return (
        get_scan_inputs(wildcards)
        | {
            "scan": f"results/scans/{wildcards.clf}.parquet",
            "binning": f"{fit_dir}/binning.json",
            "fit": f"{fit_dir}/fit.json",
            "chi2": f"{fit_dir}/chi2.json",
        }
        | get_data_scores(wildcards)
        | get_neyman_intervals(wildcards)
    )


NEYMAN_ENABLED = FIT_ENABLED and config["neyman"]["enabled"]
# the working points with profile rows in the table (steps/fit.py: methods)
NEYMAN_WORKING_POINTS = ["max_ams", "min_dmu_tot", "profile_optimum"]


def get_neyman_intervals(wildcards):
    # the neyman rows of the methods step: one observed interval per working point
    if not NEYMAN_ENABLED:
        return {}
    return {
        f"neyman__{wp}": f"results/fit/{wildcards.clf}/neyman/{wp}.json"
        for wp in NEYMAN_WORKING_POINTS
    }


def get_neyman_inputs(wildcards):
    # the profile optimum's workspace is the fit's; the cut-and-count working points' one-bin
    # workspaces are rebuilt from the scores, as the methods step builds them
    return (
        {"workspace": f"results/fit/{wildcards.clf}/workspace.json"}
        | get_scan_inputs(wildcards)
        | {"scan": f"results/scans/{wildcards.clf}.parquet"}
        | get_data_scores(wildcards)
    )


def get_toy_inputs(wildcards):
    # the calibration of the fit workspace, only when the toys run the neyman method
    inputs = {"workspace": f"results/fit/{wildcards.clf}/workspace.json"}
    if "neyman" in config["toys"]["methods"]:
        inputs["neyman"] = f"results/fit/{wildcards.clf}/neyman/profile_optimum.parquet"
    return inputs


def toy_chunks(wildcards):
    return [
        f"results/fit/{wildcards.clf}/toys/{mode}_{chunk}.parquet"
        for mode, n_chunks in toy_chunk_counts(config["toys"]).items()
        for chunk in range(n_chunks)
    ]


HYPOTEST_ENABLED = FIT_ENABLED and config["hypotest"]["enabled"]


def hypotest_chunk_toys(wildcards):
    from systpipe.steps.hypotest import hypotest_chunk_count

    return hypotest_chunk_count(config["hypotest"], int(wildcards.chunk))


def hypotest_chunks(wildcards):
    cfg = config["hypotest"]
    n_chunks = -(-cfg["n_toys"] // cfg["chunk_size"])
    return [
        f"results/fit/{wildcards.clf}/hypotest/{c}.parquet" for c in range(n_chunks)
    ]


def get_summary_plot_inputs(wildcards):
    inputs = {f"scan__{c}": f"results/scans/{c}.parquet" for c in CLASSIFIERS}
    inputs |= {f"hist__{c}": f"results/hists/{c}.parquet" for c in CLASSIFIERS}
    return inputs


SUMMARY_PLOTS = ["ams", "roc"]
CLASSIFIER_PLOTS = ["dmu_breakdown", "score_variations", "lumi_projection"]
STUDY_PLOTS = ["sigma_mu_vs_alpha", "sigma_mu_vs_fraction", "sigma_mu_vs_n"]


def final_outputs():
    # the report pages, the new figures and the HEPData submission included
    return [
        *report_outputs(),
        "results/tables/uncertainties.parquet",
        *expand("results/plots/{plot}.{ext}", plot=SUMMARY_PLOTS, ext=["png", "pdf"]),
        *expand(
            "results/plots/{clf}/{plot}.{ext}",
            clf=CLASSIFIERS,
            plot=CLASSIFIER_PLOTS,
            ext=["png", "pdf"],
        ),
        "results/studies/linear_propagation.csv",
        "results/provenance.json",
        "results/diagnostics.json",
        *(fit_outputs() if FIT_ENABLED else []),
    ]


def fit_outputs():
    return [
        *expand(
            "results/fit/{clf}/{plot}.{ext}",
            clf=CLASSIFIERS,
            plot=FIT_PLOTS,
            ext=["png", "pdf"],
        ),
        *expand("results/fit/{clf}/coverage.parquet", clf=TOY_CLASSIFIERS),
        *(
            expand("results/fit/{clf}/hypotest.parquet", clf=TOY_CLASSIFIERS)
            if HYPOTEST_ENABLED
            else []
        ),
    ]


def ingest_input_files(wildcards):
    # Every input ntuple (samples, test files, alternative files of `sample` systematics) is
    # an input of the ingest rule, so a file changed in place is re-read.
    from systpipe.ingest import input_files

    return input_files(config.get("files"), config["systematics"])


# --------------------------------------------------------------------------- the report
# Its structure (categories in reading order; the report app sorts them by name, hence the
# numbers), the input functions of the report pages and the figures, and the default target's
# report outputs (docs/report.md).
import sys

CAT_SUMMARY = "1 Summary"
CAT_TABLES = "2 Tables"
CAT_FIT = "3 Fit"
CAT_CLASSIFIERS = "4 Classifiers"
CAT_STUDIES = "5 Studies"
CAT_PROVENANCE = "6 Provenance"
REPORT_TABLES = ["compact", "fit", "methods", "breakdown", "yields", "coverage"]
REPORT_TABLE_TITLES = {
    "compact": "compact uncertainty table (summary)",
    "fit": "fit results: mu-hat, Z0, CLs limit",
    "methods": "methods compared, with coverage",
    "breakdown": "profile-fit uncertainty breakdown",
    "yields": "yields with raw and effective MC counts",
    "coverage": "coverage per method and toy mode",
}
STUDY_TITLES = {
    "sigma_mu_vs_alpha": "sigma_mu vs luminosity scale",
    "sigma_mu_vs_fraction": "sigma_mu vs signal fraction",
    "sigma_mu_vs_n": "sigma_mu vs sample size",
}


def get_summary_fit_inputs(wildcards):
    # the fit's expected Z0 on the significance plot
    if not FIT_ENABLED:
        return {}
    return {f"fit__{c}": f"results/fit/{c}/fit.json" for c in CLASSIFIERS}


def get_classifier_plot_inputs(wildcards):
    # the fit binning of the MC-count plot (10 bins above the max-AMS cut without the fit)
    if not FIT_ENABLED:
        return {}
    return {"binning": f"results/fit/{wildcards.clf}/binning.json"}


def get_report_inputs(wildcards):
    inputs = {
        "table": "results/tables/uncertainties.parquet",
        "diagnostics": "results/diagnostics.json",
        "provenance": "results/provenance.json",
    }
    inputs |= {f"hist__{c}": f"results/hists/{c}.parquet" for c in CLASSIFIERS}
    if FIT_ENABLED:
        inputs |= {f"fit__{c}": f"results/fit/{c}/fit.json" for c in CLASSIFIERS}
        inputs |= {
            f"binning__{c}": f"results/fit/{c}/binning.json" for c in CLASSIFIERS
        }
        inputs |= {
            f"coverage__{c}": f"results/fit/{c}/coverage.parquet"
            for c in TOY_CLASSIFIERS
        }
    return inputs


def get_hepdata_inputs(wildcards):
    inputs = {"table": "results/tables/uncertainties.parquet"}
    if FIT_ENABLED:
        inputs |= {f"fit__{c}": f"results/fit/{c}/fit.json" for c in CLASSIFIERS}
        inputs |= {
            f"workspace__{c}": f"results/fit/{c}/workspace.json" for c in CLASSIFIERS
        }
        inputs |= {
            f"coverage__{c}": f"results/fit/{c}/coverage.parquet"
            for c in TOY_CLASSIFIERS
        }
    return inputs


def report_outputs():
    plots = ["mc_counts", "overtraining"]
    return [
        "results/report/summary.html",
        "results/hepdata/submission.tar.gz",
        "results/plots/significance.png",
        *expand("results/plots/{clf}/{plot}.png", clf=CLASSIFIERS, plot=plots),
        *(
            expand("results/fit/{clf}/nll_scan.png", clf=CLASSIFIERS)
            + expand("results/fit/{clf}/coverage.png", clf=TOY_CLASSIFIERS)
            if FIT_ENABLED
            else []
        ),
    ]


def _report_archive_argument(argv):
    # the path of `--report X.zip` / `--report=X.zip` on the command line, else None
    for i, arg in enumerate(argv):
        value = argv[i + 1] if arg == "--report" and i + 1 < len(argv) else None
        value = arg.split("=", 1)[1] if arg.startswith("--report=") else value
        if value and value.endswith(".zip"):
            return value
    return None


def _normalise_report_archive():
    # Snakemake stores report.html in report.zip with mode 0600 (ZipFile.writestr), so the
    # unzipped report is owner-only; once it has written the archive, give every member the
    # mode the umask gives new files (0644 under 022). Same as `python -m systpipe.report_zip`.
    import os

    from systpipe.report_zip import normalise_modes

    archive = _report_archive_argument(sys.argv)
    if archive and os.path.isfile(archive):
        normalise_modes(archive)


if _report_archive_argument(sys.argv):
    import atexit

    atexit.register(_normalise_report_archive)
