"""Thin adapter: every rule runs one systpipe step; all logic lives in src/systpipe."""

from systpipe.runner import run_snakemake_job

run_snakemake_job(snakemake)  # noqa: F821 - injected by Snakemake's script directive
