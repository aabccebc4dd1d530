"""The one registry of workflow steps: ``@step`` records each step's function, the config
sections it reads and its help text. The Snakemake adapter, the command line and the code
fingerprints all read :data:`STEPS`."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .. import __version__
from ..errors import ConfigError
from ..provenance import code_fingerprint

StepFunction = Callable[..., Any]


class UndeclaredSetting(ConfigError, KeyError):
    """A step read a config section its rule does not declare in ``params.settings``."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class Settings(Mapping[str, Any]):
    """The config sections a step's rule declares: reading any other section fails loudly.

    Example:
        >>> s = Settings({"scan": {"min_signal": 5.0}}, step="scan")
        >>> s["scan"]["min_signal"]
        5.0
        >>> s["fit"]
        Traceback (most recent call last):
        ...
        systpipe.steps._registry.UndeclaredSetting: step 'scan' read config section 'fit', which its rule does not declare in params.settings (declared: ['scan'])
    """

    def __init__(self, data: Mapping[str, Any], *, step: str) -> None:
        self._data = dict(data)
        self._step = step

    def __getitem__(self, key: str) -> Any:
        if key not in self._data:
            raise UndeclaredSetting(
                f"step {self._step!r} read config section {key!r}, which its rule does not declare in "
                f"params.settings (declared: {sorted(self._data)})"
            )
        return self._data[key]

    def get(self, key: str, default: Any = None) -> Any:  # noqa: ARG002 - undeclared is an error, not a default
        return self[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


@dataclass(frozen=True)
class StepContext:
    """What every step receives besides its paths: its settings, seed, threads and the
    provenance written into its outputs."""

    step: str
    settings: Settings
    threads: int = 1
    seed_value: int | None = None
    config_hash: str = ""
    #: The step's code fingerprint when the caller has it (a rule's ``params.code``, computed
    #: when Snakemake parsed the workflow); otherwise :meth:`provenance` computes it.
    code: str | None = None

    @property
    def seed(self) -> int:
        if self.seed_value is None:
            raise ConfigError(
                f"step {self.step!r} needs the seed, but its rule passes no params.seed"
            )
        return self.seed_value

    def _fingerprint(self) -> str | None:
        # parses the step's whole import closure: 0.3-0.7 s, paid once per process
        return STEPS[self.step].fingerprint() if self.step in STEPS else None

    def provenance(self, **extra: Any) -> dict[str, Any]:
        """Provenance stored in every Parquet hand-off (no timestamps: files stay byte-identical)."""
        return {
            "config_hash": self.config_hash,
            "systpipe_version": __version__,
            "seed": self.seed_value,
            "step": self.step,
            "code": self.code if self.code is not None else self._fingerprint(),
            **extra,
        }


@dataclass(frozen=True)
class Step:
    """One registered step."""

    name: str
    function: StepFunction
    uses: tuple[str, ...] | None
    help: str
    seeded: bool = False
    ignores: tuple[str, ...] = ()

    @property
    def module(self) -> str:
        return self.function.__module__

    def fingerprint(self) -> str:
        """Hash of the source of the step's module and everything it imports inside systpipe."""
        return code_fingerprint(self.module)

    def settings_from(self, config: Mapping[str, Any], **only: str) -> dict[str, Any]:
        """The config sections this step reads (all of them when ``uses`` is None).

        ``only`` narrows a list section to the entry of that name (``classifiers="hgb"``), so a
        rule reruns only when its own entry changes.
        """
        if self.uses is None:
            return dict(config)
        # A section without schema default (files, when the sample is simulated) is None.
        out = {k: config.get(k) for k in self.uses}
        # settings that do not change the step's outputs (thread counts, the total number of
        # toys of a chunked step) are left out, so that changing them reruns nothing
        for dotted in self.ignores:
            section, key = dotted.split(".", 1)
            part = out.get(section)
            if isinstance(part, Mapping):
                out[section] = {k: v for k, v in part.items() if k != key}
        for key, name in only.items():
            entries = [e for e in (out[key] or []) if e.get("name") == name]
            if not entries:
                raise ConfigError(f"step {self.name!r}: no entry named {name!r} in '{key}'")
            out[key] = entries
        return out

    def parameters(self) -> list[str]:
        """The named inputs, outputs and wildcards the function takes (after the context)."""
        return list(inspect.signature(self.function).parameters)[1:]


#: name -> step, filled by the ``@step`` decorators of the modules in ``systpipe.steps``.
STEPS: dict[str, Step] = {}


def step(
    name: str,
    *,
    help: str,
    uses: tuple[str, ...] | None = (),
    seeded: bool = False,
    ignores: tuple[str, ...] = (),
) -> Callable[[StepFunction], StepFunction]:
    """Register a step function ``f(ctx, **named_paths_and_wildcards)``.

    Args:
        name: the step's name: the rule's ``params.step`` and the ``systpipe`` subcommand.
        help: one line for ``systpipe --help``.
        uses: the top-level config sections the step reads (None: the whole config).
        seeded: the step needs the master seed (``params.seed``).
        ignores: ``section.key`` settings left out of the step's settings because they do not
            change its outputs (so a change reruns nothing).
    """

    def register(function: StepFunction) -> StepFunction:
        if name in STEPS:
            raise ConfigError(f"step {name!r} registered twice")
        STEPS[name] = Step(
            name, function, None if uses is None else tuple(uses), help, seeded, tuple(ignores)
        )
        return function

    return register


__all__ = ["STEPS", "Settings", "Step", "StepContext", "UndeclaredSetting", "step"]
