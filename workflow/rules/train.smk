# One training job per classifier. The model's file extension depends on its library
# (LightGBM text, XGBoost UBJSON, skops), so each classifier gets its own named rule.
from systpipe.augment import parse_aware

# systematics_aware entries are checked before any job runs (a mode or systematic name the
# config does not know fails here, naming the key)
for _i, _clf in enumerate(config["classifiers"]):
    parse_aware(
        _clf.get("systematics_aware"),
        SYSTEMATICS,
        key=f"classifiers[{_i}].systematics_aware",
    )


def _unread(clf):
    # a plain classifier reads no systematic: blanking them in its params means a change of a
    # systematic does not retrain it (Snakemake reruns a job whose params changed)
    if clf.get("systematics_aware"):
        return {}
    return {"systematics": None, "input": None, "files": None}


for _clf in config["classifiers"]:

    rule:
        name:
            f"train_{_clf['name']}"
        input:
            train="results/data/train.parquet",
            # the bounded test sample: training metrics (AUC) need no more
            test="results/data/test_sample.parquet",
        output:
            model=model_path(_clf["name"]),
            info=f"results/models/{_clf['name']}.json",
        log:
            f"results/logs/train/{_clf['name']}.log",
        benchmark:
            f"results/benchmarks/train/{_clf['name']}.tsv"
        # every model first: a late classifier's chain (score, fit, neyman, toys) would run
        # alone on one core at the end (measured: train_rf started at 3 of 6.4 minutes)
        priority: 2
        conda:
            ENV
        threads: config["training"]["threads"]
        resources:
            runtime=60,
        params:
            step="train",
            clf=_clf["name"],
            code=step_fingerprint("train"),
            settings=step_settings("train", classifiers=_clf["name"]) | _unread(_clf),
            seed=config["seed"],
        script:
            "../scripts/run_step.py"
