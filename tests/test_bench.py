"""Tests of the benchmark suite (benchmarks/run.py): its timing statistics, its noise check and its reports.

The fast tests drive the suite in this process with the test hooks of benchmarks/_timing.py and
benchmarks/reliability.py: NA_CUDA_BENCH_FAKE_TIMER (synthetic durations: "clean" steady, "noisy" log-normal
spread; the ops are not timed) and NA_CUDA_BENCH_LOAD (a pretended load average), so a loaded machine is played
without loading it. The slow smoke test runs the real `--quick` suite in a subprocess (~1 min on 2 cores).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import na_cuda

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "benchmarks" / "run.py"
native = pytest.mark.skipif(
    not na_cuda.backends()["cpu"], reason="na_cuda._C is not built (the benchmark needs native kernels)"
)
UNSCORED = {"not scored: unreliable run", "not measured"}


def _bench(name: str) -> ModuleType:
    """A module of benchmarks/ (the folder the suite puts on sys.path itself)."""
    if str(RUN.parent) not in sys.path:
        sys.path.insert(0, str(RUN.parent))
    return importlib.import_module(name)


def _run_fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, timer: str, load: float) -> tuple[dict, str]:
    """`run.py --quick --sections op,memory` with the fake clock and a pretended load; (results.json, RESULTS.md)."""
    monkeypatch.setenv("NA_CUDA_BENCH_FAKE_TIMER", timer)
    monkeypatch.setenv("NA_CUDA_BENCH_LOAD", str(load))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    out = tmp_path / "bench"
    rc = _bench("run").main(["--quick", "--device", "cpu", "--sections", "op,memory", "--out", str(out)])
    assert rc == 0
    return json.loads((out / "results.json").read_text()), (out / "RESULTS.md").read_text()


@native
def test_clean_fake_run_is_reliable_and_scored(tmp_path, monkeypatch):
    res, text = _run_fake(tmp_path, monkeypatch, "clean", 0.1)
    rel = res["reliability"]
    assert rel["reliable"] is True and rel["reasons"] == []
    assert {"load", "copy", "spread"} <= set(rel["checks"]) and rel["thresholds"]["median_rel_iqr"] == 0.10
    assert rel["checks"]["copy"]["float32"]["vs_reference"] == pytest.approx(1.0, rel=0.05)
    assert rel["checks"]["spread"]["variants"] > 0
    statuses = {g["status"] for g in res["goals"]}
    assert statuses & {"met", "missed"} and not statuses & {"not scored: unreliable run"}
    # Each timed row carries its spread, ratios their per-repeat summary.
    row = next(r for r in res["neuron_op"]["rows"] if r["method"] == "na" and r["backend"] == "native")
    assert {"min", "q1", "median", "q3", "max", "n", "rel_iqr"} <= set(row["fwd_bwd_stats"])
    assert row["fwd_bwd_stats"]["n"] == res["config"]["repeats"]
    assert row["time_vs_stbp_native_stats"]["n"] == res["config"]["repeats"]
    assert "Noise check passed" in text.splitlines()[2] and "UNRELIABLE" not in text


@native
def test_loaded_machine_is_unreliable_and_scores_nothing(tmp_path, monkeypatch):
    res, text = _run_fake(tmp_path, monkeypatch, "clean", 6.0)  # the load: 6.0 on 2 cores
    rel = res["reliability"]
    assert rel["reliable"] is False
    assert any("machine loaded at the start" in r for r in rel["reasons"]), rel["reasons"]
    assert res["goals"] and all(g["status"] in UNSCORED for g in res["goals"])
    assert any(g["status"] == "not scored: unreliable run" and g["value"] is not None for g in res["goals"])
    head = text.split("## Goals")[0]
    assert "UNRELIABLE RUN" in text.splitlines()[0] and "machine loaded at the start" in head
    goals = text.split("## Goals")[1].split("## 1.")[0]
    assert "not scored: unreliable run" in goals and "| met" not in goals and "| missed" not in goals


@native
def test_noisy_timings_are_unreliable(tmp_path, monkeypatch):
    res, _ = _run_fake(tmp_path, monkeypatch, "noisy", 0.1)
    rel = res["reliability"]
    assert rel["reliable"] is False
    assert any(r.startswith("timings spread") for r in rel["reasons"]), rel["reasons"]
    assert rel["checks"]["spread"]["median_rel_iqr"] > 0.10
    assert all(g["status"] in UNSCORED for g in res["goals"])


def test_interleaved_alternates_and_pairs_ratios():
    timing = _bench("_timing")
    order: list[str] = []
    fns = {k: (lambda k=k: order.append(k)) for k in "abc"}
    samples = timing.interleaved(fns, "cpu", repeats=4, slot_s=0.0, warmup=1)
    assert {k: len(v) for k, v in samples.items()} == {"a": 4, "b": 4, "c": 4}
    timed = order[3:]  # after one warm-up call each
    assert [set(timed[i : i + 3]) for i in range(0, 12, 3)] == [set("abc")] * 4  # every repeat has each variant
    assert timed[:3] != timed[3:6]  # the order rotates between repeats
    st = timing.ratio_stats([2.0, 4.0, 6.0], [1.0, 2.0, 2.0])  # per-pair ratios 2, 2, 3
    assert st["median"] == 2.0 and st["n"] == 3 and st["max"] == 3.0
    s = timing.summarise([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s["median"] == 3.0 and s["q1"] == 2.0 and s["q3"] == 4.0 and s["rel_iqr"] == pytest.approx(2 / 3)


def test_assess_thresholds():
    rel = _bench("reliability")
    load = dict(
        cores=2,
        start_1min=0.2,
        end_1min=1.0,
        start_all=None,
        own_estimate_end=0.9,
        other_per_core_start=0.1,
        other_per_core_end=0.05,
        injected=True,
    )
    steady = [dict(variant=f"v{i}", n=5, rel_iqr=0.02) for i in range(10)]
    ref = dict(GBps=20.0, how="test")
    ok = rel.assess("cpu", load, {"float32": dict(start_GBps=19.0, end_GBps=18.0, reference=ref)}, steady)
    assert ok["reliable"], ok["reasons"]
    slow_copy = rel.assess("cpu", load, {"float32": dict(start_GBps=1.1, end_GBps=1.2, reference=ref)}, steady)
    assert not slow_copy["reliable"] and "unloaded reference" in slow_copy["reasons"][0]
    drift = rel.assess("cpu", load, {"float32": dict(start_GBps=20.0, end_GBps=10.0, reference=None)}, steady)
    assert not drift["reliable"] and "moved by 50 %" in drift["reasons"][0]
    assert drift["checks"]["copy"]["float32"]["vs_reference"] is None  # no reference: noted, not a failure
    few_noisy = steady[:9] + [dict(variant="x", n=5, rel_iqr=0.9)]
    assert rel.assess("cpu", load, {}, few_noisy)["reliable"]  # one noisy variant of ten is tolerated
    assert rel.assess("cpu", load, {}, [dict(variant="x", n=2, rel_iqr=0.9)])["reliable"]  # too few repeats
    busy_gpu_host = dict(load, other_per_core_start=0.8)
    assert rel.assess("cuda", busy_gpu_host, {}, steady)["reliable"]  # a GPU run tolerates more host load
    assert not rel.assess("cpu", busy_gpu_host, {}, steady)["reliable"]


@native
def test_bad_arguments_are_one_line_errors():
    run = _bench("run")
    with pytest.raises(SystemExit, match="--sections"):
        run.main(["--sections", "op,gpu"])
    with pytest.raises(SystemExit, match="--copy-reference"):
        run.main(["--copy-reference", "-3"])


@pytest.mark.slow  # about a minute alone, minutes on a loaded machine: make test-fast skips it
@native
def test_benchmark_suite_smoke(tmp_path):
    out = tmp_path / "bench"
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run(
        [sys.executable, str(RUN), "--quick", "--device", "cpu", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out / "results.json") as f:
        res = json.load(f)
    assert {"meta", "config", "reliability", "neuron_op", "peer", "end_to_end", "memory", "goals"} <= set(res)
    assert res["meta"]["errors"] == {}
    assert res["config"]["mode"] == "quick"
    assert res["neuron_op"]["rows"] and res["end_to_end"]["rows"] and res["memory"]["rows"]
    assert "available" in res["peer"]
    assert all({"goal", "value", "status"} <= set(g) for g in res["goals"]) and res["goals"]
    rel = res["reliability"]
    assert isinstance(rel["reliable"], bool) and rel["reliable"] == (rel["reasons"] == [])
    if not rel["reliable"]:  # this machine may well be busy: then nothing may be scored
        assert all(g["status"] in UNSCORED for g in res["goals"])
    text = (out / "RESULTS.md").read_text()
    assert "## Goals" in text and "na_cuda.backends()" in text
    pytest.importorskip("matplotlib")
    for name in ("neuron_op.png", "fig7_epoch_time.png", "memory.png"):
        assert (out / name).stat().st_size > 0, name
