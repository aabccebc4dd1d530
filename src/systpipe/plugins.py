"""Third-party extensions: modules named by the ``systpipe.plugins`` entry-point group.

A plugin is an installed distribution whose entry point in the group ``systpipe.plugins``
names a module; importing that module registers its extensions with the registries
(:func:`systpipe.systematics.register_kind`, :func:`systpipe.models.register_library`,
:func:`systpipe.stat.methods.register_method`). systpipe imports every plugin once per process,
the first time a config is validated, so the workflow's parse step, every job and the command
line see the same extensions. Only installed distributions can declare entry points: a config
file never names code to import (docs/extending.md).
"""

from __future__ import annotations

import importlib.metadata
import logging
from functools import cache

from .errors import ConfigError

log = logging.getLogger(__name__)

GROUP = "systpipe.plugins"


@cache
def load_plugins() -> tuple[str, ...]:
    """Import every ``systpipe.plugins`` entry point once; return their names (sorted)."""
    loaded = []
    for ep in sorted(importlib.metadata.entry_points(group=GROUP), key=lambda e: e.name):
        try:
            ep.load()
        except Exception as exc:  # a broken plugin must name itself, not fail later and elsewhere
            raise ConfigError(
                f"plugin {ep.name!r} ({ep.value}) of entry-point group {GROUP!r} failed to load: {exc}"
            ) from exc
        log.debug("loaded plugin %s (%s)", ep.name, ep.value)
        loaded.append(ep.name)
    return tuple(loaded)


__all__ = ["GROUP", "load_plugins"]
