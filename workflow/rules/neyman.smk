# Learned Neyman construction of each classifier at every working point with profile rows:
# critical values c(mu, nu) on a grid (Parquet) and the observed interval (steps/neyman.py).
# Its cost is neyman.budget simulations per working point (docs/statistics.md, "The neyman method").
rule neyman:
    input:
        unpack(get_neyman_inputs),
    output:
        # one job per classifier, every working point with profile rows (steps/neyman.py)
        critical__max_ams="results/fit/{clf}/neyman/max_ams.parquet",
        critical__min_dmu_tot="results/fit/{clf}/neyman/min_dmu_tot.parquet",
        critical__profile_optimum="results/fit/{clf}/neyman/profile_optimum.parquet",
        interval__max_ams="results/fit/{clf}/neyman/max_ams.json",
        interval__min_dmu_tot="results/fit/{clf}/neyman/min_dmu_tot.json",
        interval__profile_optimum="results/fit/{clf}/neyman/profile_optimum.json",
    log:
        "results/logs/fit/{clf}/neyman.log",
    benchmark:
        "results/benchmarks/neyman/{clf}.tsv"
    # the chain to the toys and the table before the plots (leaves of the DAG)
    priority: 1
    conda:
        ENV
    threads: 1
    params:
        step="neyman",
        code=step_fingerprint("neyman"),
        settings=step_settings("neyman"),
        seed=config["seed"],
    script:
        "../scripts/run_step.py"
