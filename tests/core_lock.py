"""Two pytest-xdist workers on a 2-core machine without ever running three busy processes.

``make test`` runs ``pytest -n 2``. The tests under tests/workflow (they run Snakemake and share
one smoke run) are one scheduling unit (:func:`pytest_xdist_make_scheduler`), so one worker runs
them in order while the other takes the unit tests. A unit test or a 1-core Snakemake run uses
one core; a 2-core Snakemake run uses both, so it holds :func:`all_cores`: it waits for the
other worker's running test to end and keeps it from starting another until the run is over.
This is a readers-writer lock on two files: every test outside tests/workflow takes the shared
lock (one core) for its duration, after passing through a turnstile that a waiting 2-core run
holds (so a stream of short tests cannot starve it). Without xdist every function is a no-op:
one process never competes with itself.

Registered in tests/conftest.py (``pytest_plugins``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

#: The node-id prefix of the tests that run on one worker, in collection order.
WORKFLOW_TESTS = "tests/workflow/"
#: Set by pytest-xdist in its workers: the same for both workers of one run.
_RUN_ID = os.environ.get("PYTEST_XDIST_TESTRUNUID")


def _lock_path(kind: str) -> Path:
    return Path(tempfile.gettempdir()) / f"systpipe-test-cores-{_RUN_ID}.{kind}"


@contextlib.contextmanager
def _flock(kind: str, mode: int) -> Iterator[None]:
    with open(_lock_path(kind), "a") as fh:
        fcntl.flock(fh, mode)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def all_cores() -> Iterator[None]:
    """Hold both cores (a 2-core Snakemake run); a no-op without xdist."""
    if _RUN_ID is None:
        yield
        return
    with _flock("turnstile", fcntl.LOCK_EX), _flock("cores", fcntl.LOCK_EX):
        yield


@contextlib.contextmanager
def one_core() -> Iterator[None]:
    """Hold one core (a test outside the workflow group); a no-op without xdist."""
    if _RUN_ID is None:
        yield
        return
    with _flock("turnstile", fcntl.LOCK_EX):
        pass  # queued behind a waiting 2-core run
    with _flock("cores", fcntl.LOCK_SH):
        yield


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Remove the lock files when a worker is done. The other worker may still run tests: it
    then locks a fresh file, and with this worker gone there is nobody to share the cores with."""
    if _RUN_ID is not None:
        for kind in ("turnstile", "cores"):
            _lock_path(kind).unlink(missing_ok=True)


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """xdist's load-scope scheduling with every test under tests/workflow in one scope and every
    other test in a scope of its own. (``--dist loadgroup`` would do this with
    ``xdist_group`` marks, but pytest-xdist 3.8 sets the group through ``item._nodeid``, which
    pytest 9 no longer reads.)"""
    from xdist.scheduler import LoadScopeScheduling

    class WorkflowScopeScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return WORKFLOW_TESTS if nodeid.startswith(WORKFLOW_TESTS) else nodeid

    return WorkflowScopeScheduling(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # the workflow scope first: its worker starts the long 1-core Snakemake run at once, beside
    # the unit tests, instead of after them
    items.sort(key=lambda item: not item.nodeid.startswith(WORKFLOW_TESTS))


@pytest.fixture(autouse=True)
def _one_core_per_test(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.nodeid.startswith(WORKFLOW_TESTS):
        yield  # the workflow worker: its 2-core runs take all_cores themselves
        return
    with one_core():
        yield
