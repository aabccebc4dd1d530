"""Workflow steps: one module per rule file (``workflow/rules/<stage>.smk`` -> ``steps/<stage>.py``).

Each step is a plain function ``f(ctx, **named_paths_and_wildcards)`` registered with
``@step``; importing this package fills :data:`STEPS`, the registry that the Snakemake
adapter (:mod:`systpipe.runner`), the command line and the code fingerprints read.
"""

from . import data, fit, hypotest, neyman, plots, scan, score, table, toys, train, vary  # noqa: F401 - registers the steps
from ._registry import STEPS, Settings, Step, StepContext, UndeclaredSetting, step

__all__ = ["STEPS", "Settings", "Step", "StepContext", "UndeclaredSetting", "step"]
