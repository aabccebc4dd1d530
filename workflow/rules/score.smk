# Per classifier and test partition: scores of the nominal events and of every
# feature-changing variation (the model is loaded once), reduced with the weight-only
# variations to the partition's fine score histograms (docs/scaling.md). Weight-only
# variations are never scored: they reuse the nominal scores.
rule score:
    input:
        unpack(get_partition_variations),
        model=get_model,
        test="results/data/test/{part}.parquet",
        # the model record: a parameterised classifier's alpha inputs and their values
        info="results/models/{clf}.json",
    output:
        hist="results/hists/{clf}/{part}.parquet",
        pairs="results/hists/{clf}/{part}.pairs.parquet",
    log:
        "results/logs/score/{clf}/{part}.log",
    benchmark:
        "results/benchmarks/score/{clf}/{part}.tsv"
    # the chain to the toys and the table before the plots (leaves of the DAG)
    priority: 1
    conda:
        ENV
    threads: config["training"]["threads"]
    params:
        step="score",
        code=step_fingerprint("score"),
        settings=step_settings("score"),
    script:
        "../scripts/run_step.py"


# The sum of the partitions' histograms, in partition order: what every later step reads.
rule merge_histograms:
    input:
        hists=expand("results/hists/{{clf}}/{part}.parquet", part=PARTITIONS),
        pairs=expand("results/hists/{{clf}}/{part}.pairs.parquet", part=PARTITIONS),
    output:
        hist="results/hists/{clf}.parquet",
        pair_sums="results/hists/{clf}.pairs.parquet",
    log:
        "results/logs/merge_histograms/{clf}.log",
    benchmark:
        "results/benchmarks/merge_histograms/{clf}.tsv"
    priority: 1
    conda:
        ENV
    threads: 1
    params:
        step="merge_histograms",
        code=step_fingerprint("merge_histograms"),
        settings=step_settings("merge_histograms"),
    script:
        "../scripts/run_step.py"


rule score_data:
    input:
        model=get_model,
        events=lambda wildcards: config["fit"]["data"]["path"],
        info="results/models/{clf}.json",
    output:
        scores="results/scores/{clf}/data.parquet",
    log:
        "results/logs/score/{clf}/data.log",
    benchmark:
        "results/benchmarks/score_data/{clf}.tsv"
    conda:
        ENV
    threads: config["training"]["threads"]
    params:
        step="score_data",
        code=step_fingerprint("score_data"),
        settings=step_settings("score_data"),
    script:
        "../scripts/run_step.py"
