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

from ..errors import ConfigError, DataContractError
from ..io import write_bytes

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


def add_label(ax: Axes, rlabel: str | None = None) -> None:
    """Non-official experiment-style label: bold 'systpipe' + italic 'Simulation'.

    Call it last: mplhep spaces the label words in axes fractions, so the layout is computed
    and frozen first (otherwise constrained layout shrinks the axes afterwards and the words
    collide).
    """
    fig = cast(Figure, ax.get_figure())  # new_figure's axes belong to a Figure
    if fig.get_layout_engine() is not None:
        fig.draw_without_rendering()
        fig.set_layout_engine("none")
    mplhep.label.exp_label(exp=LABEL, data=False, ax=ax, rlabel=rlabel or "", loc=0)


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
    "COLORS",
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
]
