"""Readable text for plots, tables and the report: experiment label, sqrt(s), luminosity, and
process, parameter and classifier names (config section ``labels``, config/README.md)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Built-in sample (docs/simulation.md): mathtext labels of its processes.
DEFAULT_PROCESSES: dict[str, str] = {
    "ggH_WW": r"$H\to WW^{*}$ (signal)",
    "WW": r"$WW$",
    "ttbar": r"$t\bar{t}$",
    "Ztautau": r"$Z\to\tau\tau$",
}
#: Parameters of the statistical model and the built-in systematics.
DEFAULT_PARAMETERS: dict[str, str] = {
    "mu": r"$\mu$",
    "lumi": "Luminosity",
    "sig": "Signal normalisation",
    "bkg": "Background normalisation",
    "det": "Detector energy scale",
    "mc_stat": "MC statistics",
    "stat": "Data statistics",
    "syst": "Systematic (total)",
    "total": "Total",
}
DEFAULT_CLASSIFIERS: dict[str, str] = {
    "hgb": "HGB",
    "lgbm": "LightGBM",
    "xgb": "XGBoost",
    "rf": "Random forest",
}
_STATERROR = re.compile(r"^staterror_(?P<channel>[^\[]+)\[(?P<bin>\d+)\]$")


@dataclass(frozen=True)
class PlotLabels:
    """Text shown on every figure and table.

    Example:
        >>> lab = PlotLabels(processes={"WW": "di-boson"})
        >>> lab.rlabel
        '√s = 13 TeV, 139 fb$^{-1}$'
        >>> lab.process("WW"), lab.process("ttbar"), lab.parameter("staterror_SR[9]")
        ('di-boson', '$t\\\\bar{t}$', 'MC stat. SR bin 10')
    """

    experiment: str = "systpipe"
    sqrt_s_tev: float = 13.0
    luminosity_fb: float | None = 139.0
    signal_color: str = "#e42536"
    processes: Mapping[str, str] = field(default_factory=dict)
    parameters: Mapping[str, str] = field(default_factory=dict)
    classifiers: Mapping[str, str] = field(default_factory=dict)

    @property
    def lumi_text(self) -> str:
        """'139 fb$^{-1}$' (empty when the luminosity is unknown)."""
        if self.luminosity_fb is None:
            return ""
        return f"{self.luminosity_fb:g} fb$^{{-1}}$"

    @property
    def rlabel(self) -> str:
        """Energy and luminosity, the text under the experiment label of every plot."""
        energy = f"\u221as = {self.sqrt_s_tev:g} TeV"
        return f"{energy}, {self.lumi_text}" if self.lumi_text else energy

    @property
    def plain_rlabel(self) -> str:
        """The same without mathtext, for HTML and captions: 'sqrt(s) = 13 TeV, 139 fb^-1'."""
        energy = f"√s = {self.sqrt_s_tev:g} TeV"
        if self.luminosity_fb is None:
            return energy
        return f"{energy}, {self.luminosity_fb:g} fb⁻¹"

    def process(self, name: str) -> str:
        """Readable label of a process (the name itself when none is known)."""
        return self.processes.get(name) or DEFAULT_PROCESSES.get(name) or _escape(name)

    def parameter(self, name: str) -> str:
        """Readable label of a parameter; ``staterror_SR[9]`` -> 'MC stat. SR bin 10'."""
        if name in self.parameters:
            return self.parameters[name]
        if name in DEFAULT_PARAMETERS:
            return DEFAULT_PARAMETERS[name]
        match = _STATERROR.match(name)
        if match:
            return f"MC stat. {match['channel']} bin {int(match['bin']) + 1}"
        return _escape(name)

    def classifier(self, name: str) -> str:
        """Readable label of a classifier."""
        return self.classifiers.get(name) or DEFAULT_CLASSIFIERS.get(name) or _escape(name)


def _escape(text: str) -> str:
    """Escape '$' and '_' -free text for mathtext (a raw name never opens math mode)."""
    return str(text).replace("$", r"\$")


def luminosity_from_settings(settings: Mapping[str, Any]) -> float | None:
    """The luminosity of the run: ``labels.luminosity_fb``, else that of the simulated sample
    or of the input files; None when none of these sections is declared or set.

    Example:
        >>> luminosity_from_settings({"labels": {"luminosity_fb": None},
        ...     "input": {"source": "simulate"}, "simulate": {"luminosity_fb": 140.0}})
        140.0
    """
    labels = _section(settings, "labels")
    if labels.get("luminosity_fb") is not None:
        return float(labels["luminosity_fb"])
    source = _section(settings, "input").get("source")
    part = _section(settings, "files" if source == "files" else "simulate")
    value = part.get("luminosity_fb")
    return None if value is None else float(value)


def _section(settings: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    # a step's Settings raise on an undeclared section; `in` is False for it
    value = settings[key] if key in settings else None
    return value if isinstance(value, Mapping) else {}


def labels_from_settings(settings: Mapping[str, Any]) -> PlotLabels:
    """PlotLabels from a step's settings (sections labels, input, simulate, files).

    A step that does not declare ``labels`` gets the built-in sample's defaults (139 fb^-1).

    Example:
        >>> labels_from_settings({}).luminosity_fb
        139.0
        >>> labels_from_settings({"labels": {"sqrt_s_tev": 13.6, "luminosity_fb": 300}}).rlabel
        '√s = 13.6 TeV, 300 fb$^{-1}$'
    """
    if "labels" not in settings:
        return PlotLabels()
    cfg = _section(settings, "labels")
    default = PlotLabels()
    return PlotLabels(
        experiment=str(cfg.get("experiment") or default.experiment),
        sqrt_s_tev=float(cfg.get("sqrt_s_tev") or default.sqrt_s_tev),
        luminosity_fb=luminosity_from_settings(settings),
        signal_color=str(cfg.get("signal_color") or default.signal_color),
        processes=dict(cfg.get("processes") or {}),
        parameters=dict(cfg.get("parameters") or {}),
        classifiers=dict(cfg.get("classifiers") or {}),
    )


DEFAULT_LABELS = PlotLabels()

__all__ = [
    "DEFAULT_CLASSIFIERS",
    "DEFAULT_LABELS",
    "DEFAULT_PARAMETERS",
    "DEFAULT_PROCESSES",
    "PlotLabels",
    "labels_from_settings",
    "luminosity_from_settings",
]
