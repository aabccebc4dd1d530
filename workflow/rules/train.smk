# One training job per classifier. The model's file extension depends on its library
# (LightGBM text, XGBoost UBJSON, skops), so each classifier gets its own named rule.
for _clf in config["classifiers"]:

    rule:
        name:
            f"train_{_clf['name']}"
        input:
            train="results/data/train.parquet",
            test="results/data/test.parquet",
        output:
            model=model_path(_clf["name"]),
            info=f"results/models/{_clf['name']}.json",
        log:
            f"results/logs/train/{_clf['name']}.log",
        conda:
            ENV
        threads: config["training"]["threads"]
        resources:
            runtime=60,
        params:
            step="train",
            clf=_clf["name"],
            code=step_fingerprint("train"),
            settings=step_settings("train", classifiers=_clf["name"]),
            seed=config["seed"],
        script:
            "../scripts/run_step.py"
