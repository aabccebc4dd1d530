"""Systematics-aware training data: events shifted by nuisance values drawn from their priors.

A classifier with ``classifiers[].systematics_aware`` (config/README.md) is trained on
``n_copies`` copies of its training events, each event of each copy shifted by its own
nuisance values alpha_k ~ N(0, 1) (clipped to +/- ``clip``), one per listed systematic, where
alpha = +/-1 is the systematic's up/down variation. Two modes:

- ``augment``: the classifier sees the shifted features and weights only, so it learns a
  score that is robust over the prior (the alphas are not inputs).
- ``parameterised``: the alphas are extra input columns ``alpha_<name>`` (the HEPHY /
  Ghosh-Nachman-Whiteson route), so the score is a function s(x, alpha). The workflow scores
  every variation at ``score_at`` (default alpha = 0): the summary statistic of a binned fit
  must be one fixed function of the features, and a variation is already in the features of
  its events (giving the classifier alpha = +1 for ``det_up`` would let the template know
  which template it is). To evaluate at the fitted nuisance values, set
  ``systematics_aware.score_at`` to them, or call :func:`systpipe.score.predict_scores` with
  ``alphas=``.

The shifts go through the same code as the vary step: :mod:`systpipe.variations` (via the
kinds of :mod:`systpipe.systematics`) with the delta replaced by the per-event ``alpha * delta``,
so alpha = +/-1 reproduces the vary step's up/down events bit for bit, derived features
(MET, m_ll, mt, ...) recomputed exactly as there. Norm systematics rescale the weights of the
events they select by ``1 + alpha delta`` (never below 0); weight systematics interpolate
linearly between the nominal and the up (alpha > 0) or down (alpha < 0) weight. Sample
systematics have no continuous nuisance and are refused.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from .errors import ConfigError, DataContractError
from .provenance import derive_seed
from .systematics import Systematic, VaryContext, parse_systematics
from .variations import event_normal, norm_mask

log = logging.getLogger(__name__)

MODES = ("augment", "parameterised")
#: Systematic kinds with a continuous nuisance parameter the augmentation can draw.
SUPPORTED_KINDS = ("norm", "scale", "smear", "weight")
#: Prefix of the nuisance-value columns (``alpha_det``).
ALPHA_PREFIX = "alpha_"
#: Column of the augmented table that numbers the copy (0 = nominal when included).
COPY_COLUMN = "aug_copy"


def alpha_column(systematic: str) -> str:
    """The input column of a systematic's nuisance value.

    Example:
        >>> alpha_column("det")
        'alpha_det'
    """
    return f"{ALPHA_PREFIX}{systematic}"


@dataclass(frozen=True)
class AwareSpec:
    """A classifier's parsed ``systematics_aware`` entry.

    Attributes:
        mode: ``augment`` or ``parameterised``.
        systematics: names of the systematics whose nuisances are drawn, in config order.
        n_copies: shifted copies of every training event.
        include_nominal: also keep the unshifted events (alpha = 0) as one more copy.
        clip: alpha is clipped to [-clip, clip] (a truncated prior keeps weights positive).
        score_at: parameterised only: alpha values every event is scored at (default 0).
    """

    mode: str
    systematics: tuple[str, ...]
    n_copies: int = 2
    include_nominal: bool = False
    clip: float = 3.0
    score_at: Mapping[str, float] = field(default_factory=dict)

    @property
    def parameterised(self) -> bool:
        return self.mode == "parameterised"

    @property
    def alpha_columns(self) -> list[str]:
        """Extra model inputs, after the features: the alphas (parameterised), else none."""
        return [alpha_column(s) for s in self.systematics] if self.parameterised else []

    def score_alphas(self) -> dict[str, float]:
        """Alpha of every systematic at scoring time (0 unless ``score_at`` says otherwise)."""
        return {s: float(self.score_at.get(s, 0.0)) for s in self.systematics}

    def record(self) -> dict[str, Any]:
        """JSON record for the model's info file (the score step reads it back)."""
        return {
            "mode": self.mode,
            "systematics": list(self.systematics),
            "n_copies": self.n_copies,
            "include_nominal": self.include_nominal,
            "clip": self.clip,
            "score_at": self.score_alphas() if self.parameterised else {},
            "alpha_columns": self.alpha_columns,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> AwareSpec:
        """Inverse of :meth:`record`."""
        return cls(
            mode=str(record["mode"]),
            systematics=tuple(record["systematics"]),
            n_copies=int(record["n_copies"]),
            include_nominal=bool(record["include_nominal"]),
            clip=float(record["clip"]),
            score_at=dict(record.get("score_at") or {}),
        )


def parse_aware(
    entry: Mapping[str, Any] | None,
    systematics: Sequence[Mapping[str, Any]],
    *,
    key: str = "classifiers[].systematics_aware",
) -> AwareSpec | None:
    """The :class:`AwareSpec` of a classifier's ``systematics_aware`` entry (None: plain).

    ``systematics`` omitted or null means every declared systematic of a supported kind.

    Raises:
        ConfigError: unknown mode, an undeclared or unsupported systematic, bad n_copies,
            clip or score_at; the message names the key (``key`` is its prefix).

    Example:
        >>> systs = [{"name": "lumi", "type": "norm", "delta": 0.01},
        ...          {"name": "det", "type": "scale", "delta": 0.02, "columns": ["x"]}]
        >>> parse_aware({"mode": "parameterised", "systematics": ["det"]}, systs).alpha_columns
        ['alpha_det']
        >>> parse_aware({"mode": "augment"}, systs).systematics
        ('lumi', 'det')
        >>> parse_aware({"mode": "boost"}, systs)
        Traceback (most recent call last):
        ...
        systpipe.errors.ConfigError: classifiers[].systematics_aware.mode: 'boost' is not one of ['augment', 'parameterised']
    """
    if entry is None:
        return None
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{key}: expected a mapping, got {entry!r}")
    mode = entry.get("mode")
    if mode not in MODES:
        raise ConfigError(f"{key}.mode: {mode!r} is not one of {list(MODES)}")
    declared = {s.name: s for s in parse_systematics(systematics)}
    names = entry.get("systematics")
    if names is None:
        names = [n for n, s in declared.items() if s.kind in SUPPORTED_KINDS]
        skipped = [n for n, s in declared.items() if s.kind not in SUPPORTED_KINDS]
        if skipped:
            log.info("%s: systematics %s have no continuous nuisance; not drawn", key, skipped)
    names = list(names)
    unknown = [n for n in names if n not in declared]
    if unknown:
        raise ConfigError(
            f"{key}.systematics: {unknown} not declared in 'systematics' "
            f"(declared: {list(declared)})"
        )
    if len(set(names)) != len(names) or not names:
        raise ConfigError(f"{key}.systematics: expected distinct names, at least one; got {names}")
    unsupported = [n for n in names if declared[n].kind not in SUPPORTED_KINDS]
    if unsupported:
        raise ConfigError(
            f"{key}.systematics: {unsupported} are of type "
            f"{[declared[n].kind for n in unsupported]}, which has no continuous nuisance to "
            f"draw; supported types: {list(SUPPORTED_KINDS)}"
        )
    n_copies = entry.get("n_copies", 2)
    if isinstance(n_copies, bool) or not isinstance(n_copies, int) or n_copies < 1:
        raise ConfigError(f"{key}.n_copies: expected an integer >= 1, got {n_copies!r}")
    clip = entry.get("clip", 3.0)
    if isinstance(clip, bool) or not isinstance(clip, int | float) or not clip > 0:
        raise ConfigError(f"{key}.clip: expected a number > 0, got {clip!r}")
    score_at = dict(entry.get("score_at") or {})
    stray = sorted(set(score_at) - set(names))
    if stray:
        raise ConfigError(f"{key}.score_at: {stray} are not among {key}.systematics {names}")
    if score_at and mode != "parameterised":
        raise ConfigError(f"{key}.score_at: only a parameterised classifier takes alpha inputs")
    return AwareSpec(
        mode=str(mode),
        systematics=tuple(names),
        n_copies=int(n_copies),
        include_nominal=bool(entry.get("include_nominal", False)),
        clip=float(clip),
        score_at={k: float(v) for k, v in score_at.items()},
    )


def shift_events(
    events: pd.DataFrame, systematic: Systematic, alpha: Any, ctx: VaryContext
) -> pd.DataFrame:
    """``events`` (every column kept) under ``systematic`` at nuisance value ``alpha`` (a
    number or one value per row); alpha = +1 / -1 is the vary step's up / down variation.

    Example:
        >>> ev = pd.DataFrame({"event_id": [1, 2], "label": [1, 0], "process": ["H", "WW"],
        ...                    "weight": [2.0, 4.0]})
        >>> s = Systematic.from_config({"name": "sig", "type": "norm", "delta": 0.5,
        ...                             "labels": ["signal"]})
        >>> shift_events(ev, s, np.array([-1.0, 3.0]), VaryContext(0, ()))["weight"].tolist()
        [1.0, 4.0]
    """
    a = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (len(events),))
    kind = systematic.kind
    if kind == "norm":
        out = events.copy()
        mask = norm_mask(events, systematic)
        w = out["weight"].to_numpy(dtype=np.float64).copy()
        # the vary step's weight * (1 +/- delta); never below zero for a large negative alpha
        w[mask] = w[mask] * np.maximum(1.0 + a[mask] * systematic["delta"], 0.0)
        out["weight"] = w
        return out
    if kind == "weight":
        w = events["weight"].to_numpy(dtype=np.float64)
        up = events[systematic["up_column"]].to_numpy(dtype=np.float64)
        down = events[systematic["down_column"]].to_numpy(dtype=np.float64)
        varied = np.where(a >= 0.0, w * up, w * down)
        size = np.abs(a)
        # linear in |alpha| between nominal and the vary step's w * factor (exact at +/-1)
        return events.assign(weight=w * (1.0 - size) + varied * size)
    if kind in ("scale", "smear"):
        # the vary step's own code, with the per-event alpha * delta as the "up" delta:
        # 1 + 1.0 * (alpha delta) is bit-identical to 1 +/- delta at alpha = +/-1
        spec = dict(systematic.spec)
        spec["delta"] = a * float(systematic["delta"])
        shifted = Systematic(name=systematic.name, kind=kind, spec=MappingProxyType(spec))
        return systematic.kind_info.apply(events, shifted, "up", ctx)
    raise ConfigError(
        f"systematic {systematic.name!r}: type {kind!r} cannot be drawn for systematics-aware "
        f"training; supported types: {list(SUPPORTED_KINDS)}"
    )


def draw_alphas(
    event_id: np.ndarray, spec: AwareSpec, *, copy: int, seed: int
) -> dict[str, np.ndarray]:
    """Nuisance values of every event of copy ``copy``: N(0, 1) clipped to +/- clip, a pure
    function of (seed, systematic, copy, event_id), so neither row order nor subsampling
    changes an event's draw."""
    ids = np.asarray(event_id, dtype=np.int64)
    out = {}
    for name in spec.systematics:
        z = event_normal(ids, derive_seed(seed, "augment", name, str(copy)))
        out[name] = np.clip(z, -spec.clip, spec.clip)
    return out


def augment_events(
    events: pd.DataFrame,
    spec: AwareSpec,
    systematics: Sequence[Mapping[str, Any]],
    ctx: VaryContext,
    *,
    seed: int,
) -> pd.DataFrame:
    """The augmented training table: ``n_copies`` shifted copies of ``events`` (plus the
    unshifted events first with ``include_nominal``), each with its ``alpha_<name>`` columns
    and :data:`COPY_COLUMN`; systematics are applied in config order.

    Raises:
        DataContractError: ``events`` lacks event_id or a column a systematic needs.
    """
    if "event_id" not in events.columns:
        raise DataContractError(
            f"augmentation: column 'event_id' missing; columns present: {list(events.columns)}"
        )
    declared = {s.name: s for s in parse_systematics(systematics)}
    base = events.reset_index(drop=True)
    ids = base["event_id"].to_numpy()
    copies = []
    if spec.include_nominal:
        zero = {alpha_column(n): np.zeros(len(base)) for n in spec.systematics}
        copies.append(base.assign(**zero, **{COPY_COLUMN: 0}))
    for c in range(1, spec.n_copies + 1):
        alphas = draw_alphas(ids, spec, copy=c, seed=seed)
        shifted = base
        for name in declared:  # config order, as the systematics are declared
            if name in alphas:
                shifted = shift_events(shifted, declared[name], alphas[name], ctx)
        cols = {alpha_column(n): a for n, a in alphas.items()}
        copies.append(shifted.reset_index(drop=True).assign(**cols, **{COPY_COLUMN: c}))
    out = pd.concat(copies, ignore_index=True)
    log.info(
        "augmented %d events to %d rows (%d copies, systematics %s, mode %s)",
        len(base),
        len(out),
        len(copies),
        list(spec.systematics),
        spec.mode,
    )
    return out


def read_aware(info: str | os.PathLike[str] | None) -> AwareSpec | None:
    """The spec recorded in a model's JSON record (``results/models/<name>.json``, written by
    the train step); None for a plain classifier or when no record is given.

    Raises:
        DataContractError: the record cannot be read.
    """
    if info is None:
        return None
    import json
    from pathlib import Path

    path = Path(info)
    try:
        record = json.loads(path.read_text()).get("systematics_aware")
    except (OSError, ValueError, AttributeError) as exc:
        raise DataContractError(f"{path}: cannot read the model record: {exc}") from exc
    return None if record is None else AwareSpec.from_record(record)


def with_alphas(
    df: pd.DataFrame, spec: AwareSpec | None, alphas: Mapping[str, Any] | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """``df`` with the alpha input columns set (``alphas``, default the spec's score_at) and
    the names of those columns, for scoring a parameterised model; unchanged otherwise."""
    if spec is None or not spec.parameterised:
        return df, []
    values = spec.score_alphas() if alphas is None else dict(alphas)
    missing = [s for s in spec.systematics if s not in values]
    stray = sorted(set(values) - set(spec.systematics))
    if missing or stray:
        raise ConfigError(
            f"alpha values {sorted(values)}: expected exactly the model's nuisances "
            f"{list(spec.systematics)} (missing {missing}, unknown {stray})"
        )
    cols = {alpha_column(s): np.broadcast_to(values[s], (len(df),)) for s in spec.systematics}
    return df.assign(**cols), list(cols)


__all__ = [
    "ALPHA_PREFIX",
    "COPY_COLUMN",
    "MODES",
    "SUPPORTED_KINDS",
    "AwareSpec",
    "alpha_column",
    "augment_events",
    "draw_alphas",
    "parse_aware",
    "read_aware",
    "shift_events",
    "with_alphas",
]
