"""One dispatch table for every step, shared by the Snakemake adapter and the CLI."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import pipeline

log = logging.getLogger(__name__)


@dataclass
class Job:
    """What a step needs: named inputs/outputs, wildcards, threads and the validated config."""

    config: Mapping[str, Any]
    input: Mapping[str, Any] = field(default_factory=dict)
    output: Mapping[str, Any] = field(default_factory=dict)
    wildcards: Mapping[str, str] = field(default_factory=dict)
    threads: int = 1


def _prefixed(named: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix):]: v for k, v in named.items() if k.startswith(prefix)}


def _train(job: Job) -> None:
    pipeline.train(
        job.config, job.wildcards["clf"], train_events=job.input["train"], test_events=job.input["test"],
        model=job.output["model"], info=job.output["info"], threads=job.threads,
    )


def _score(job: Job) -> None:
    pipeline.score(
        job.config, job.wildcards["clf"], job.wildcards["variation"], model=job.input["model"],
        events=job.input["events"], output=job.output[0] if isinstance(job.output, list) else job.output["scores"],
        threads=job.threads,
    )


def _scan(job: Job) -> None:
    pipeline.scan(
        job.config, job.wildcards["clf"], scores=_prefixed(job.input, "score__"),
        weights=_prefixed(job.input, "weight__"), output=job.output["scan"],
    )


def _plots(job: Job) -> None:
    from . import pipeline_plots

    pipeline_plots.plots(job.config, inputs=job.input, outputs=job.output)


def _studies(job: Job) -> None:
    from . import pipeline_plots

    pipeline_plots.studies(job.config, outputs=job.output)


def _fit_step(name: str) -> Callable[[Job], None]:
    def run(job: Job) -> None:
        from . import pipeline_fit

        getattr(pipeline_fit, name)(job)

    return run


STEPS: dict[str, Callable[[Job], None]] = {
    "simulate": lambda job: pipeline.simulate(job.config, events=job.output["events"]),
    "ingest": lambda job: pipeline.ingest(job.config, events=job.output["events"]),
    "split": lambda job: pipeline.split(
        job.config, events=job.input["events"], train=job.output["train"], test=job.output["test"]
    ),
    "train": _train,
    "vary": lambda job: pipeline.vary(
        job.config, job.wildcards["variation"], test_events=job.input["test"], output=job.output["variation"]
    ),
    "score": _score,
    "score_data": lambda job: pipeline.score_data(
        job.config, job.wildcards["clf"], model=job.input["model"], events=job.input["events"],
        output=job.output["scores"], threads=job.threads,
    ),
    "scan": _scan,
    "table": lambda job: pipeline.table(
        job.config, scans=_prefixed(job.input, "scan__"), infos=_prefixed(job.input, "info__"),
        prefix=str(job.output["parquet"]).removesuffix(".parquet"), methods=_prefixed(job.input, "methods__"),
        classifiers_prefix=str(job.output["classifiers"]).removesuffix(".parquet") if "classifiers" in job.output else None,
    ),
    "plots": _plots,
    "studies": _studies,
    "provenance": lambda job: pipeline.provenance(job.config, output=job.output["provenance"]),
    "workspace": _fit_step("workspace"),
    "fit": _fit_step("fit"),
    "chi2": _fit_step("chi2"),
    "toys": _fit_step("toys"),
    "toys_summary": _fit_step("toys_summary"),
    "methods": _fit_step("method_rows"),
}


def run(step: str, job: Job) -> None:
    """Run ``step`` with pipeline-wide thread limits in place."""
    if step not in STEPS:
        raise KeyError(f"unknown step {step!r}; known steps: {sorted(STEPS)}")
    with pipeline.limit_threads(job.threads):
        STEPS[step](job)


def configure_logging(log_file: str | None = None, level: int = logging.INFO) -> None:
    """Send log records (and tracebacks) to the rule's log file, or to stderr."""
    handlers: list[logging.Handler] = []
    if log_file:
        stream = open(log_file, "w", encoding="utf-8")  # noqa: SIM115 - lives as long as the job
        sys.stderr = stream
        handlers.append(logging.StreamHandler(stream))
    else:
        handlers.append(logging.StreamHandler(sys.stderr))
    logging.basicConfig(
        level=level, handlers=handlers, force=True,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def run_snakemake_job(smk: Any) -> None:
    """Entry point of ``workflow/scripts/run_step.py``: unpack the ``snakemake`` object."""
    configure_logging(str(smk.log[0]) if smk.log else None)
    from .config import validate_config

    job = Job(
        config=validate_config(smk.config),
        input=dict(smk.input.items()),
        output=dict(smk.output.items()),
        wildcards={
            **dict(smk.wildcards.items()),
            **{k: getattr(smk.params, k) for k in ("clf", "variation") if hasattr(smk.params, k)},
        },
        threads=int(smk.threads),
    )
    log.info("step %s, wildcards %s, threads %d", smk.params.step, dict(job.wildcards), job.threads)
    try:
        run(smk.params.step, job)
    except Exception:
        log.exception("step %s failed", smk.params.step)
        raise
