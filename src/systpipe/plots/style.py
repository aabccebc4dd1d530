"""Shared look of every systpipe figure: style, colours, label, output paths, atomic saving."""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import matplotlib.rcsetup
import matplotlib.style
import mplhep
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedFormatter, FixedLocator, NullLocator

from ..errors import ConfigError, DataContractError
from ..io import write_bytes
from .labels import DEFAULT_LABELS, PlotLabels

log = logging.getLogger(__name__)

OutPath = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]

FORMATS = (".png", ".pdf")
DPI = 150
LABEL = "systpipe"
STYLE: dict[str, Any] = {
    **mplhep.style.ATLAS,
    # The ATLAS style's serif fallbacks are not all installed everywhere; pin fonts that ship
    # with mplhep/matplotlib so that no findfont warning is ever emitted.
    "font.sans-serif": ["TeX Gyre Heros", "DejaVu Sans"],
    "legend.fontsize": "small",
    "axes.prop_cycle": matplotlib.rcsetup.cycler(
        color=[
            "#3f90da",
            "#ffa90e",
            "#bd1f01",
            "#94a4a2",
            "#832db6",
            "#a96b59",
            "#e76300",
            "#b9ac70",
            "#717581",
            "#92dadd",
        ]
    ),
}
COLORS: list[str] = STYLE["axes.prop_cycle"].by_key()["color"]
#: Major ticks of a logit score axis, labelled as plain numbers.
LOGIT_TICKS = (1e-4, 1e-3, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999)
#: Up variations red, down variations blue (the usual convention of systematics plots).
UP_COLOR = "#d62728"
DOWN_COLOR = "#1f5fbf"
#: Background stack colours (the signal colour comes from the labels).
BACKGROUND_COLORS = ["#3f90da", "#ffa90e", "#94a4a2", "#832db6", "#a96b59", "#92dadd", "#b9ac70"]


def output_paths(out: OutPath) -> list[Path]:
    """Resolve an output stem (``results/ams`` -> ``.png`` + ``.pdf``) or explicit paths.

    A single path ending in ``.png``/``.pdf`` is treated as the stem of both files.

    Example:
        >>> [p.name for p in output_paths("plots/ams_hgb")]
        ['ams_hgb.png', 'ams_hgb.pdf']
        >>> [p.name for p in output_paths(["a/x.pdf"])]
        ['x.pdf']
    """
    if isinstance(out, str | os.PathLike):
        path = Path(out)
        if path.suffix.lower() in FORMATS:
            path = path.with_suffix("")
        return [path.with_name(path.name + ext) for ext in FORMATS]
    paths = [Path(p) for p in out]
    if not paths:
        raise ConfigError("plot output: no output path given")
    bad = [str(p) for p in paths if p.suffix.lower() not in FORMATS]
    if bad:
        raise ConfigError(f"plot output: unsupported file type {bad}; use .png or .pdf")
    return paths


@contextlib.contextmanager
def figure_style() -> Iterator[None]:
    """Context in which every systpipe figure is built and saved (mplhep ATLAS-like style)."""
    with matplotlib.style.context(STYLE):
        yield


def new_figure(
    nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] = (8.0, 6.0), **kwargs: Any
) -> tuple[Figure, np.ndarray]:
    """Create a pyplot-free Agg figure (no global state, nothing to close) and its axes array."""
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
    return fig, axes


def add_label(
    ax: Axes,
    rlabel: str | None = None,
    *,
    labels: PlotLabels | None = None,
    data: bool = False,
    text: str | None = None,
) -> None:
    """Non-official experiment-style label: bold experiment word + italic 'Simulation'
    (``data`` False), and sqrt(s) with the luminosity of ``labels`` (or ``rlabel``) on the
    right, both above the axes; ``text`` (region, working point, mu-hat) goes into the axes'
    top left corner.
    Call it last: mplhep spaces the label words in axes fractions, so the layout is computed
    and frozen first (otherwise constrained layout shrinks the axes afterwards and the words
    collide).
    """
    lab = labels or DEFAULT_LABELS
    fig = cast(Figure, ax.get_figure())  # new_figure's axes belong to a Figure
    if fig.get_layout_engine() is not None:
        fig.draw_without_rendering()
        fig.set_layout_engine("none")
    mplhep.label.exp_label(exp=lab.experiment, data=data, ax=ax, rlabel=rlabel or lab.rlabel, loc=0)
    if text:
        ax.text(
            0.03,
            0.96,
            text,
            transform=ax.transAxes,
            ha="left",
            va="top",
            fontsize="small",
            gid="plot_annotation",
        )


def logit_axis(ax: Axes, values: np.ndarray | Sequence[float], *, lo: float = 0.01) -> None:
    """Logit x-axis (0.01, 0.1, 0.5, 0.9, 0.99, ... equally spaced) over the finite part of
    ``values`` inside (lo, 1 - lo/10): the tight score cuts of the selected region get as
    much room as the loose ones."""
    v = np.asarray(values, dtype=float)
    inside = v[(v > 0) & (v < 1)]
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        # autoscaling spans drawn over the whole [0, 1] overflows the logistic transform
        ax.set_xscale("logit", nonpositive="clip")
    left = max(lo, float(inside.min())) if inside.size else lo
    right = min(1.0 - lo / 10.0, float(inside.max())) if inside.size else 1.0 - lo / 10.0
    ax.set_xlim(left, max(right, left * 1.0001))
    ticks = [t for t in LOGIT_TICKS if left <= t <= ax.get_xlim()[1]]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FixedFormatter([f"{t:g}" for t in ticks]))
    ax.xaxis.set_minor_locator(NullLocator())


def save_figure(fig: Figure, out: OutPath) -> list[Path]:
    """Render ``fig`` to every requested format, then move the files into place atomically.

    PDF creation dates are dropped so that identical inputs give byte-identical files.
    """
    paths = output_paths(out)
    blobs = []
    for path in paths:
        buf = io.BytesIO()
        fmt = path.suffix.lower().lstrip(".")
        metadata = {"CreationDate": None} if fmt == "pdf" else None
        fig.savefig(
            buf, format=fmt, dpi=DPI, metadata=metadata, bbox_inches="tight", pad_inches=0.08
        )
        blobs.append(buf.getvalue())
    for path, blob in zip(paths, blobs, strict=True):
        write_bytes(blob, path)
    fig.clear()
    log.info("wrote %s", ", ".join(str(p) for p in paths))
    return paths


def require(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise a DataContractError naming the missing columns and the columns present.

    Example:
        >>> require(pd.DataFrame({"score": [0.5]}), ["label", "score"], "score frame")
        Traceback (most recent call last):
        ...
        systpipe.errors.DataContractError: score frame: missing column(s) ['label']; columns present: ['score']
    """
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataContractError(
            f"{what}: missing column(s) {missing}; columns present: {list(df.columns)}"
        )


def tex_escape(text: str) -> str:
    r"""Escape '$' so that a name from the config does not open mathtext.

    Example:
        >>> print(tex_escape("cost$"))
        cost\$
    """
    return str(text).replace("$", r"\$")


__all__ = [
    "BACKGROUND_COLORS",
    "COLORS",
    "DOWN_COLOR",
    "UP_COLOR",
    "DPI",
    "FORMATS",
    "LABEL",
    "STYLE",
    "OutPath",
    "add_label",
    "figure_style",
    "new_figure",
    "output_paths",
    "require",
    "save_figure",
    "tex_escape",
    "logit_axis",
]
