"""Systematic uncertainties as objects: a :class:`Systematic` parsed once from the config, its
:class:`Variation` s, the registry of systematic kinds, and the column names derived from them.

A systematic's kind decides everything that differs between systematics: which config keys it
takes, whether it changes features (and so needs the classifiers to re-score), how it is applied
to the events, and how it enters the likelihood and the linear method (docs/systematics.md).
Adding a kind is one :class:`Kind` subclass registered with :func:`register_kind` (plus the
schema's enum); nothing else branches on the kind's name.

Example:
    >>> systs = parse_systematics([{"name": "lumi", "type": "norm", "delta": 0.01},
    ...                            {"name": "det", "type": "scale", "delta": 0.02, "columns": ["x"]}])
    >>> [v.name for v in all_variations(systs)]
    ['nominal', 'lumi_up', 'lumi_down', 'det_up', 'det_down']
    >>> systs[1].changes_features, columns.dmu("det"), columns.s(systs[0].up)
    (True, 'dmu_det', 'S_lumi_up')
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

import pandas as pd

from . import variations as shifts
from .errors import ConfigError, DataContractError

log = logging.getLogger(__name__)

NOMINAL = "nominal"
DIRECTIONS = ("up", "down")


def variation_name(systematic: str, direction: str) -> str:
    """The name of one variation: the only place that writes ``<systematic>_<direction>``.

    Example:
        >>> variation_name("det", "up"), variation_name("det", "nominal")
        ('det_up', 'nominal')
    """
    if direction == NOMINAL:
        return NOMINAL
    if direction not in DIRECTIONS:
        raise ConfigError(
            f"variation direction must be one of {list(DIRECTIONS)}, got {direction!r}"
        )
    return f"{systematic}_{direction}"


def split_variation_name(name: str) -> tuple[str, str]:
    """``(systematic, direction)`` of a variation name, the inverse of :func:`variation_name`.

    Directions are only the suffixes ``_up`` and ``_down`` and systematic names may not end in
    one (the config refuses it), so names with underscores split unambiguously at the last one.

    Example:
        >>> split_variation_name("tau_es_up"), split_variation_name("nominal")
        (('tau_es', 'up'), ('nominal', 'nominal'))
    """
    if name == NOMINAL:
        return NOMINAL, NOMINAL
    systematic, sep, direction = name.rpartition("_")
    if not sep or not systematic or direction not in DIRECTIONS:
        raise ConfigError(
            f"variation {name!r}: expected 'nominal' or '<systematic>_up' / '<systematic>_down'"
        )
    return systematic, direction


@dataclass(frozen=True)
class VaryContext:
    """What applying a variation may need besides the events: the smearing seed, the feature
    columns of the output, and a reader of alternative input files (``sample`` kind)."""

    seed: int
    features: Sequence[str]
    load_alternative: Callable[[Sequence[str]], pd.DataFrame] | None = None
    #: files input: derived columns, MET following and n_jets migration after scale/smear.
    recompute: shifts.Recompute | None = None


class Kind:
    """A kind of systematic. Subclasses set the class attributes and implement :meth:`apply`.

    Attributes:
        name: the config's ``systematics[].type``.
        required: config keys the kind needs.
        allowed: kind-specific keys it accepts (``required`` included).
        changes_features: True if it changes feature values (the classifiers re-score).
        linearisable: True if the linear method has a Jacobian for it (a rate change);
            otherwise the linear method uses its symmetrised shift.

    Every kind enters the workspace the same way: a normsys where its up/down templates are a
    uniform rescaling of a sample, else a histosys (``stat/workspace.py``).
    """

    name: ClassVar[str] = ""
    required: ClassVar[tuple[str, ...]] = ()
    allowed: ClassVar[frozenset[str]] = frozenset()
    changes_features: ClassVar[bool] = False
    linearisable: ClassVar[bool] = False

    def apply(
        self, events: pd.DataFrame, systematic: Systematic, direction: str, ctx: VaryContext
    ) -> pd.DataFrame:
        """The test events under ``systematic`` shifted in ``direction`` ("up" or "down")."""
        raise NotImplementedError

    def input_columns(self, systematic: Systematic) -> list[str]:
        """Source columns the kind needs carried through ingest (besides the features)."""
        return []


class Norm(Kind):
    """Rate systematic: weights of the selected labels/processes times (1 +/- delta)."""

    name = "norm"
    required = ("delta",)
    allowed = frozenset({"delta", "labels", "processes"})
    linearisable = True

    def apply(
        self, events: pd.DataFrame, systematic: Systematic, direction: str, ctx: VaryContext
    ) -> pd.DataFrame:
        return shifts.apply_norm(events, systematic, direction)


class Scale(Kind):
    """Energy scale: listed columns times (1 +/- delta), derived features recomputed."""

    name = "scale"
    required = ("delta", "columns")
    allowed = frozenset({"delta", "columns", "recompute_derived", "linear_columns"})
    changes_features = True

    def apply(
        self, events: pd.DataFrame, systematic: Systematic, direction: str, ctx: VaryContext
    ) -> pd.DataFrame:
        return shifts.apply_scale(events, systematic, direction, ctx.recompute)


class Smear(Kind):
    """Resolution: seeded per-event Gaussian smearing of the listed columns."""

    name = "smear"
    required = ("delta", "columns")
    allowed = frozenset({"delta", "columns", "recompute_derived"})
    changes_features = True

    def apply(
        self, events: pd.DataFrame, systematic: Systematic, direction: str, ctx: VaryContext
    ) -> pd.DataFrame:
        return shifts.apply_smear(
            events, systematic, direction, seed=ctx.seed, recompute=ctx.recompute
        )


class Weight(Kind):
    """Per-event up/down weight factors from input columns."""

    name = "weight"
    required = ("up_column", "down_column")
    allowed = frozenset({"up_column", "down_column"})

    def apply(
        self, events: pd.DataFrame, systematic: Systematic, direction: str, ctx: VaryContext
    ) -> pd.DataFrame:
        return shifts.apply_weight(events, systematic, direction)

    def input_columns(self, systematic: Systematic) -> list[str]:
        return [systematic["up_column"], systematic["down_column"]]


class Sample(Kind):
    """Alternative samples: the processes of the up/down files replace the nominal ones."""

    name = "sample"
    required = ("up_paths", "down_paths")
    allowed = frozenset({"up_paths", "down_paths"})
    changes_features = True

    def apply(
        self, events: pd.DataFrame, systematic: Systematic, direction: str, ctx: VaryContext
    ) -> pd.DataFrame:
        if ctx.load_alternative is None:
            raise ConfigError(f"systematic {systematic.name!r} of type 'sample' needs input files")
        return shifts.apply_sample(
            events, systematic, direction, load_alternative=ctx.load_alternative
        )


#: The registry of systematic kinds: ``systematics[].type`` -> kind.
KINDS: dict[str, Kind] = {k.name: k() for k in (Norm, Scale, Smear, Weight, Sample)}
#: The built-in kinds (the schema's enum lists exactly these; plugins add to KINDS).
BUILTIN_KINDS = tuple(KINDS)
#: Keys every systematic may carry whatever its kind (schema defaults of other kinds are dropped).
COMMON_KEYS = frozenset({"name", "type"})


def register_kind(kind: Kind) -> Kind:
    """Add a kind to :data:`KINDS` (plugins); its name must be new."""
    if not kind.name or kind.name in KINDS:
        raise ConfigError(f"systematic kind {kind.name!r} is empty or already registered")
    KINDS[kind.name] = kind
    return kind


def unregister_kind(name: str) -> None:
    """Remove a plugin kind (tests); the built-in kinds stay."""
    if name in BUILTIN_KINDS:
        raise ConfigError(f"cannot unregister the built-in systematic kind {name!r}")
    KINDS.pop(name, None)


def kind_of(name: str) -> Kind:
    """The registered kind ``name``, or a ConfigError listing the known kinds."""
    try:
        return KINDS[name]
    except KeyError:
        raise ConfigError(
            f"unknown systematic type {name!r}; expected one of {sorted(KINDS)}"
        ) from None


@dataclass(frozen=True)
class Variation:
    """One variation: nominal (``systematic`` None) or a systematic shifted up or down."""

    systematic: Systematic | None
    direction: str

    @property
    def name(self) -> str:
        """``nominal`` or ``<systematic>_<direction>``."""
        if self.systematic is None:
            return NOMINAL
        return variation_name(self.systematic.name, self.direction)

    @property
    def is_nominal(self) -> bool:
        return self.systematic is None

    @property
    def changes_features(self) -> bool:
        """True if the events' features differ from nominal (the classifiers re-score)."""
        return self.systematic is not None and self.systematic.changes_features

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Systematic(Mapping[str, Any]):
    """A systematic parsed from its validated config entry.

    It is also a read-only mapping of that entry (``syst["delta"]``), so the event-level code
    reads its own keys directly.
    """

    name: str
    kind: str
    spec: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_config(cls, entry: Mapping[str, Any]) -> Systematic:
        if isinstance(entry, Systematic):
            return entry
        try:
            name, kind = str(entry["name"]), str(entry["type"])
        except (KeyError, TypeError):
            raise ConfigError(f"a systematic needs 'name' and 'type', got {entry!r}") from None
        kind_of(kind)
        return cls(name=name, kind=kind, spec=MappingProxyType(dict(entry)))

    # Mapping protocol over the config entry
    def __getitem__(self, key: str) -> Any:
        return self.spec[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.spec)

    def __len__(self) -> int:
        return len(self.spec)

    @property
    def kind_info(self) -> Kind:
        return kind_of(self.kind)

    @property
    def delta(self) -> float | None:
        value = self.spec.get("delta")
        return None if value is None else float(value)

    @property
    def changes_features(self) -> bool:
        return self.kind_info.changes_features

    @property
    def linearisable(self) -> bool:
        return self.kind_info.linearisable

    @property
    def up(self) -> Variation:
        return Variation(self, "up")

    @property
    def down(self) -> Variation:
        return Variation(self, "down")

    @property
    def variations(self) -> tuple[Variation, Variation]:
        return (self.up, self.down)

    def apply(self, events: pd.DataFrame, direction: str, ctx: VaryContext) -> pd.DataFrame:
        """The events shifted in ``direction``: weight-only kinds return ``event_id, weight``;
        feature-changing kinds also ``label, process`` and the feature columns, ready to score."""
        log.info(
            "variation %s: type %s, direction %s",
            variation_name(self.name, direction),
            self.kind,
            direction,
        )
        shifted = self.kind_info.apply(events, self, direction, ctx)
        if not self.changes_features:
            return shifted
        missing = [c for c in ctx.features if c not in shifted.columns]
        if missing:
            raise DataContractError(
                f"variation {variation_name(self.name, direction)!r}: column(s) {missing} not in the "
                f"event table; columns present: {list(shifted.columns)}"
            )
        return shifted[["event_id", "label", "process", "weight", *ctx.features]].reset_index(
            drop=True
        )


def parse_systematics(entries: Iterable[Mapping[str, Any]]) -> list[Systematic]:
    """Systematic objects from the config's ``systematics`` list (objects pass through)."""
    return [Systematic.from_config(e) for e in entries]


def nominal() -> Variation:
    """The nominal variation."""
    return Variation(None, NOMINAL)


def all_variations(systematics: Iterable[Mapping[str, Any]]) -> list[Variation]:
    """Nominal first, then up and down of each systematic in config order."""
    return [nominal()] + [v for s in parse_systematics(systematics) for v in s.variations]


def variation_names(systematics: Iterable[Mapping[str, Any]]) -> list[str]:
    """Names of :func:`all_variations`.

    Example:
        >>> variation_names([{"name": "lumi", "type": "norm", "delta": 0.01}])
        ['nominal', 'lumi_up', 'lumi_down']
    """
    return [v.name for v in all_variations(systematics)]


def feature_variations(systematics: Iterable[Mapping[str, Any]]) -> list[str]:
    """Variations that need a re-score (feature-changing kinds)."""
    return [v.name for v in all_variations(systematics) if v.changes_features]


def weight_variations(systematics: Iterable[Mapping[str, Any]]) -> list[str]:
    """Variations that only change event weights (the nominal scores are reused)."""
    return [v.name for v in all_variations(systematics)[1:] if not v.changes_features]


def parse_variation(name: str, systematics: Iterable[Mapping[str, Any]]) -> Variation:
    """The variation called ``name`` among the declared systematics."""
    variations = all_variations(systematics)
    for v in variations:
        if v.name == name and not v.is_nominal:
            return v
    raise ConfigError(f"unknown variation {name!r}; declared: {[v.name for v in variations[1:]]}")


def apply_variation(
    events: pd.DataFrame,
    name: str,
    systematics: Iterable[Mapping[str, Any]],
    *,
    seed: int,
    features: Sequence[str],
    load_alternative: Callable[[Sequence[str]], pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Apply variation ``name`` to the test events (see :meth:`Systematic.apply`)."""
    variation = parse_variation(name, systematics)
    assert variation.systematic is not None
    ctx = VaryContext(seed=seed, features=tuple(features), load_alternative=load_alternative)
    return variation.systematic.apply(events, variation.direction, ctx)


class Columns:
    """Column names of the scan and the final table derived from systematics and variations.

    Example:
        >>> columns.d_up("lumi"), columns.dmu_lin("sig"), columns.b("det_down"), columns.mu("det_up")
        ('d_up_lumi', 'dmu_lin_sig', 'B_det_down', 'mu_det_up')
    """

    @staticmethod
    def _key(x: str | Systematic | Variation) -> str:
        return x if isinstance(x, str) else x.name

    def dmu(self, systematic: str | Systematic) -> str:
        return f"dmu_{self._key(systematic)}"

    def d_up(self, systematic: str | Systematic) -> str:
        return f"d_up_{self._key(systematic)}"

    def d_down(self, systematic: str | Systematic) -> str:
        return f"d_down_{self._key(systematic)}"

    def dmu_lin(self, systematic: str | Systematic) -> str:
        return f"dmu_lin_{self._key(systematic)}"

    def s(self, variation: str | Variation) -> str:
        return f"S_{self._key(variation)}"

    def b(self, variation: str | Variation) -> str:
        return f"B_{self._key(variation)}"

    def mu(self, variation: str | Variation) -> str:
        return f"mu_{self._key(variation)}"


columns = Columns()


__all__ = [
    "BUILTIN_KINDS",
    "DIRECTIONS",
    "KINDS",
    "NOMINAL",
    "Columns",
    "Kind",
    "Systematic",
    "VaryContext",
    "Variation",
    "all_variations",
    "apply_variation",
    "columns",
    "feature_variations",
    "kind_of",
    "nominal",
    "parse_systematics",
    "parse_variation",
    "register_kind",
    "split_variation_name",
    "unregister_kind",
    "variation_name",
    "variation_names",
    "weight_variations",
]
