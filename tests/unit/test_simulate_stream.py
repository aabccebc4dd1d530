"""The streaming simulation (``simulate_to_parquet``): the file it writes is the table
``simulate_with_stats`` returns, bit for bit, with the same provenance; its memory is bounded by
one chunk, not by the table; a failure leaves no file behind, neither output nor temporary."""

from __future__ import annotations

import inspect
import logging
import tracemalloc
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from systpipe import io
from systpipe.config import validate_config
from systpipe.errors import ConfigError
from systpipe.provenance import derive_seed
from systpipe.runner import run
from systpipe.simulate import COLUMNS, TRUTH_COLUMNS, SimulationResult, driver
from systpipe.simulate.driver import (
    SimulationOptions,
    SimulationStats,
    simulate_to_parquet,
    simulate_with_stats,
)

SEVERAL_CHUNKS: SimulationOptions = {
    "n_selected": {"ggH_WW": 3000, "WW": 3000, "ttbar": 3000, "Ztautau": 3000},
    "seed": 3,
    "chunk_size": 1000,
}
# Z->tautau keeps ~5 % of its events: chunks of 20 often select none
EMPTY_CHUNKS: SimulationOptions = {
    "n_selected": {"Ztautau": 60, "WW": 40},
    "seed": 11,
    "chunk_size": 20,
    "keep_truth": True,
    "cross_sections_pb": {"WW": 2.0},
    "jet_pt_resolution": 0.2,
    "lepton_pt_min_leading": 27.0,
}
DTYPES = {"event_id": "int64", "process": "object", "label": "int8", "n_jets": "int64"}


def _prov(stats: SimulationStats) -> dict[str, Any]:
    return {"step": "simulate", **stats.summary()}


def _reference(tmp_path: Path, options: SimulationOptions) -> tuple[SimulationResult, Path]:
    """Today's path: the whole frame in memory, then ``io.write_table``."""
    result = simulate_with_stats(**options)
    stats = {
        "n_generated": dict(result.n_generated),
        "efficiency": dict(result.efficiency),
        "cross_sections_pb": dict(result.cross_sections_pb),
    }
    ref = tmp_path / "ref" / "events.parquet"
    io.write_table(result.events, ref, {"step": "simulate", **stats})
    return result, ref


def _assert_same_file(streamed: Path, ref: Path, events: pd.DataFrame) -> None:
    got = pd.read_parquet(streamed)
    pd.testing.assert_frame_equal(got, events, check_exact=True)
    pd.testing.assert_frame_equal(got, pd.read_parquet(ref), check_exact=True)
    assert pq.read_schema(streamed).remove_metadata() == pq.read_schema(ref).remove_metadata()
    assert io.read_provenance(streamed) == io.read_provenance(ref)


@pytest.mark.parametrize(
    ("options", "has_empty_chunks"),
    [(SEVERAL_CHUNKS, False), (EMPTY_CHUNKS, True)],
    ids=["several_chunks", "empty_chunks"],
)
def test_streamed_file_is_the_in_memory_table(
    tmp_path: Path, options: SimulationOptions, has_empty_chunks: bool
) -> None:
    calls: list[tuple[str, int, int]] = []

    def progress(process: str, have: int, target: int) -> None:
        calls.append((process, have, target))

    out = tmp_path / "out" / "events.parquet"
    traced: SimulationOptions = {**options, "progress": progress}
    stats = simulate_to_parquet(out, provenance=_prov, **traced)
    result, ref = _reference(tmp_path, options)

    _assert_same_file(out, ref, result.events)
    assert stats == SimulationStats(
        len(result.events), result.n_generated, result.efficiency, result.cross_sections_pb
    )
    got = pd.read_parquet(out)
    truth = list(TRUTH_COLUMNS) if options.get("keep_truth") else []
    assert list(got.columns) == [*COLUMNS, *truth]
    assert {c: str(t) for c, t in got.dtypes.items()} == {
        c: DTYPES.get(c, "float64") for c in got.columns
    }
    assert len(got) == sum(options["n_selected"].values())
    assert (got["weight"] > 0).all()  # every weight filled in by the second pass
    assert [p.name for p in out.parent.iterdir()] == ["events.parquet"]  # no temporary left
    # the configurations exercise what they are meant to: several chunks per process...
    per_process = {name: sum(1 for c in calls if c[0] == name) for name in options["n_selected"]}
    assert min(per_process.values()) >= 3
    if has_empty_chunks:  # ...and chunks that select no event
        have = [c[1] for c in calls if c[0] == "Ztautau"]
        assert any(a == b for a, b in zip(have, have[1:], strict=False))


@pytest.mark.parametrize("n_selected", [{}, {"WW": 0, "ttbar": 0}], ids=["none", "zeros"])
def test_empty_request_writes_the_empty_contract_table(
    tmp_path: Path, n_selected: dict[str, int]
) -> None:
    out = tmp_path / "events.parquet"
    stats = simulate_to_parquet(out, provenance=_prov, n_selected=n_selected, seed=1)
    result, ref = _reference(tmp_path, {"n_selected": n_selected, "seed": 1})
    _assert_same_file(out, ref, result.events)
    assert len(pd.read_parquet(out)) == 0 and list(pd.read_parquet(out).columns) == list(COLUMNS)
    assert stats == SimulationStats(0, {}, {}, {})
    assert io.read_provenance(out) == {
        "step": "simulate",
        "n_generated": {},
        "efficiency": {},
        "cross_sections_pb": {},
    }


def test_default_provenance_is_the_generation_summary(tmp_path: Path) -> None:
    out = tmp_path / "events.parquet"
    stats = simulate_to_parquet(out, n_selected={"WW": 50}, seed=2, chunk_size=500)
    assert io.read_provenance(out) == stats.summary()
    assert set(stats.summary()) == {"n_generated", "efficiency", "cross_sections_pb"}


def test_memory_is_bounded_by_a_chunk_not_by_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """40 chunks' worth of selected events: the in-memory path holds the whole table (and the
    concat's copy), the streaming path only about one chunk. numpy reports its buffers to
    tracemalloc, so gathering the chunks as frames shows in its peak; Arrow's memory (tables,
    read buffers) does not, so it is sampled at every chunk written, in both passes."""
    chunk = 2000
    options: SimulationOptions = {
        "n_selected": {"WW": 40_000, "ttbar": 40_000},
        "seed": 4,
        "chunk_size": chunk,
    }
    simulate_with_stats(n_selected={"WW": 10, "ttbar": 10}, seed=1, chunk_size=chunk)  # warm up
    arrow_bytes: list[int] = []
    write = io.TableWriter.write

    def sampled(self: io.TableWriter, df: pd.DataFrame) -> None:
        arrow_bytes.append(pa.total_allocated_bytes())
        write(self, df)

    monkeypatch.setattr(io.TableWriter, "write", sampled)
    tracemalloc.start()
    try:
        simulate_to_parquet(tmp_path / "stream.parquet", **options)
        _, streamed_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        events = simulate_with_stats(**options).events
        io.write_table(events, tmp_path / "frame.parquet")
        _, frame_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    table = int(events.memory_usage(deep=True, index=True).sum())
    assert len(events) == 40 * chunk
    assert frame_peak > table  # the measure sees a gathered table...
    assert streamed_peak < table / 4, (streamed_peak, table)  # ...and the stream holds none
    assert len(arrow_bytes) > 2 * 40  # every chunk of both passes sampled
    assert max(arrow_bytes) < table / 4, (max(arrow_bytes), table)  # nor does Arrow


def _raise_on_call(n: int, error: type[BaseException], function: Any) -> Any:
    calls = {"n": 0}

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == n:
            raise error(f"injected failure on call {n}")
        return function(*args, **kwargs)

    return wrapped


def _fail_on_batch(n: int, function: Any) -> Any:
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        for i, batch in enumerate(function(*args, **kwargs), start=1):
            if i == n:
                raise RuntimeError(f"injected failure on batch {n}")
            yield batch

    return wrapped


@pytest.mark.parametrize("where", ["generation", "second pass", "interrupt"])
def test_failure_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    error: type[BaseException] = KeyboardInterrupt if where == "interrupt" else RuntimeError
    if where == "second pass":  # the unweighted file is complete, the output half written
        monkeypatch.setattr(driver.io, "iter_batches", _fail_on_batch(2, driver.io.iter_batches))
    else:  # the 3rd chunk's reconstruction, during the first pass (Ctrl-C or an error)
        monkeypatch.setattr(driver, "reconstruct", _raise_on_call(3, error, driver.reconstruct))
    out = tmp_path / "out" / "events.parquet"
    with pytest.raises(error):
        simulate_to_parquet(out, n_selected={"WW": 3000, "ttbar": 3000}, seed=1, chunk_size=1000)
    assert list(out.parent.iterdir()) == []


def test_impossible_selection_leaves_no_file(tmp_path: Path) -> None:
    out = tmp_path / "out" / "events.parquet"
    with pytest.raises(ConfigError, match="keeps no WW"):
        simulate_to_parquet(
            out,
            n_selected={"WW": 10},
            seed=1,
            chunk_size=1000,
            lepton_pt_min_leading=1e5,
            max_empty_chunks=3,
        )
    assert list(out.parent.iterdir()) == []


def test_bad_keywords_fail_before_any_file(tmp_path: Path) -> None:
    out = tmp_path / "out" / "events.parquet"
    with pytest.raises(ConfigError, match="chunk_size"):
        simulate_to_parquet(out, n_selected={"WW": 10}, seed=1, chunk_size=0)
    with pytest.raises(TypeError, match="jet_resolution"):
        simulate_to_parquet(out, n_selected={"WW": 10}, seed=1, jet_resolution=0.1)  # type: ignore[call-arg]
    assert not out.parent.exists()


def test_options_type_lists_the_keywords_of_simulate_with_stats() -> None:
    keys = SimulationOptions.__required_keys__ | SimulationOptions.__optional_keys__
    assert keys == set(inspect.signature(simulate_with_stats).parameters)  # (Required: mypy's)


def test_simulate_step_writes_the_table_and_provenance_of_before(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The step streams; its file is what the step wrote before (``simulate_with_stats`` with
    the settings, then ``io.write_table`` with ``ctx.provenance(**stats)``)."""
    cfg = validate_config(
        {"seed": 3, "simulate": {"n_selected": {"WW": 1500, "Ztautau": 500}, "chunk_size": 1000}}
    )
    out = tmp_path / "events.parquet"
    with caplog.at_level(logging.INFO, logger="systpipe.steps.data"):
        run("simulate", config=cfg, output={"events": out})
    sim = cfg["simulate"]
    result = simulate_with_stats(
        n_selected=sim["n_selected"],
        seed=derive_seed(3, "simulate"),
        luminosity_fb=sim["luminosity_fb"],
        chunk_size=sim["chunk_size"],
        cross_sections_pb=sim.get("cross_sections_pb"),
        **sim["detector"],
        **sim["selection"],
    )
    pd.testing.assert_frame_equal(pd.read_parquet(out), result.events, check_exact=True)
    prov = io.read_provenance(out)
    assert prov["step"] == "simulate" and {"config_hash", "code", "seed"} <= set(prov)
    assert prov["n_generated"] == result.n_generated
    assert prov["efficiency"] == result.efficiency
    assert prov["cross_sections_pb"] == result.cross_sections_pb
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("simulated 2000 selected events in ") for m in messages)
    assert any(m.startswith("generation summary: {'n_generated': ") for m in messages)
