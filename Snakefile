# systpipe: systematic uncertainties on the signal strength mu for classifier-based selections.
# Entry point; the workflow itself lives in workflow/Snakefile (so it can be used as a module).
include: "workflow/Snakefile"
