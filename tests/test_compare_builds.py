"""Smoke test of benchmarks/compare_builds.py (several builds timed in one interleaved run): one build, this
interpreter, a tiny problem; its JSON, table and plot. No timing is asserted."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

import na_cuda

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "compare_builds.py"
pytestmark = pytest.mark.skipif(not na_cuda.backends()["cpu"], reason="na_cuda._C is not built")


def _module():
    spec = importlib.util.spec_from_file_location("compare_builds", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_two_names_for_one_build(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out, png = tmp_path / "cb.json", tmp_path / "cb.png"
    args = ["--build", f"a={sys.executable}", "--build", f"b={sys.executable}", "--Ts", "5", "--rates", "0.15"]
    args += ["--methods", "na,stbp,tssl,stbp_learn", "--rounds", "2", "--reps", "1", "--steps", "2560"]
    assert _module().main([*args, "--json", str(out), "--plot", str(png)]) == 0
    text = capsys.readouterr().out
    assert "| 5 | 15% |" in text and "b / a" in text
    res = json.loads(out.read_text())
    assert set(res["ns_per_neuron_step"]) == {"a", "b"}
    keys = {f"{m} T=5 r=0.15" for m in ("na", "stbp", "tssl", "stbp_learn")}
    assert set(res["ns_per_neuron_step"]["a"]) == keys
    assert all(len(res["samples"][b]) == 2 for b in "ab")
    assert png.stat().st_size > 0


def test_bad_build_is_refused(capsys):
    with pytest.raises(SystemExit):
        _module().main(["--build", "nopython"])
    assert "NAME=PYTHON" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _module().main(["--build", "x=/nonexistent/python"])
    assert "not an executable interpreter" in capsys.readouterr().err
