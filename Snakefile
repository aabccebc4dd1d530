# systpipe: systematic uncertainties on the signal strength mu for classifier-based selections.
# Entry point. The rules live under workflow/; the default target is defined here because
# Snakemake keeps only the including file's default target.
include: "workflow/Snakefile"


rule all:
    default_target: True
    input:
        final_outputs(),
