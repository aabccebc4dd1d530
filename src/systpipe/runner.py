"""Run one registered step from Snakemake or from the command line.

Named inputs, outputs, wildcards and extra params become the step function's keyword
arguments; names written ``<group>__<key>`` (``score__nominal``) are gathered into one mapping
``group={key: path}``. The step receives only the config sections its rule declares.
"""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Mapping
from typing import Any

from threadpoolctl import threadpool_limits

from .errors import ConfigError
from .provenance import config_hash
from .steps import STEPS, Settings, StepContext

log = logging.getLogger(__name__)

#: params of a rule that are not arguments of the step function.
RESERVED_PARAMS = frozenset({"step", "code", "settings", "seed"})


def _arguments(named: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in named.items():
        group, sep, key = name.partition("__")
        if sep:
            out.setdefault(group, {})[key] = value
        else:
            out[name] = value
    return out


def step_arguments(step: str, **named: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``step`` from named inputs/outputs/wildcards/params (merged in
    that order); a name the step does not take, or a required one missing, is an error naming
    both the step and the name."""
    if step not in STEPS:
        raise ConfigError(f"unknown step {step!r}; known steps: {sorted(STEPS)}")
    kwargs: dict[str, Any] = {}
    for what, items in named.items():
        for key, value in _arguments(items).items():
            if key in kwargs:
                raise ConfigError(
                    f"step {step!r}: {what} {key!r} is also given as an input, output or wildcard"
                )
            kwargs[key] = value
    sig = inspect.signature(STEPS[step].function)
    params = list(sig.parameters.values())[1:]
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    accepted = {p.name for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD}
    unknown = sorted(set(kwargs) - accepted)
    if unknown and not takes_any:
        raise ConfigError(f"step {step!r} does not take {unknown}; it takes {sorted(accepted)}")
    missing = [
        p.name
        for p in params
        if p.default is inspect.Parameter.empty
        and p.kind is p.KEYWORD_ONLY
        and p.name not in kwargs
    ]
    if missing:
        raise ConfigError(
            f"step {step!r} needs {missing} (named inputs, outputs or wildcards), which were not given"
        )
    return kwargs


def run(
    step: str,
    *,
    config: Mapping[str, Any],
    settings: Mapping[str, Any] | None = None,
    threads: int = 1,
    seed: int | None = None,
    code: str | None = None,
    **named: Mapping[str, Any],
) -> None:
    """Run ``step`` with its settings (default: the sections its registration declares, taken
    from ``config``), OpenMP/BLAS limited to ``threads``; ``code`` is the step's code
    fingerprint if the caller has it (a rule's ``params.code``), else it is computed."""
    kwargs = step_arguments(step, **named)
    entry = STEPS[step]
    ctx = StepContext(
        step=step,
        settings=Settings(entry.settings_from(config) if settings is None else settings, step=step),
        threads=int(threads),
        seed_value=seed if seed is not None else (config.get("seed") if entry.seeded else None),
        config_hash=config_hash(config),
        code=code,
    )
    with threadpool_limits(limits=max(int(threads), 1)):
        entry.function(ctx, **kwargs)


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
        level=level,
        handlers=handlers,
        force=True,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def run_snakemake_job(smk: Any) -> None:
    """Entry point of ``workflow/scripts/run_step.py``: unpack the ``snakemake`` object."""
    configure_logging(str(smk.log[0]) if smk.log else None)
    from .config import validate_config

    params = dict(smk.params.items())
    step = params["step"]
    extra = {k: v for k, v in params.items() if k not in RESERVED_PARAMS}
    log.info(
        "step %s, wildcards %s, threads %d",
        step,
        dict(smk.wildcards.items()) | extra,
        int(smk.threads),
    )
    try:
        run(
            step,
            config=validate_config(smk.config),
            settings=params.get("settings"),
            threads=int(smk.threads),
            seed=params.get("seed"),
            # the fingerprint Snakemake computed when it parsed the workflow (and compares for
            # its code rerun trigger): recomputing it costs every job 0.3-0.7 s
            code=params.get("code"),
            input=dict(smk.input.items()),
            output=dict(smk.output.items()),
            wildcards=dict(smk.wildcards.items()),
            params=extra,
        )
    except Exception:
        log.exception("step %s failed", step)
        raise


__all__ = ["configure_logging", "run", "run_snakemake_job", "step_arguments"]
