"""The single-neuron experiment (NA paper 4.2) at reduced size: outputs, determinism, batching, learning."""

from __future__ import annotations

import json
import math

import pytest
import torch

from na_cuda.experiments import single_neuron as sn

ROUNDS, ITERS = 8, 20


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("single_neuron")
    summary = sn.run_experiment(str(out), rounds=ROUNDS, iters=ITERS, seed=0, progress=False)
    return out, summary


def test_outputs(small_run):
    out, summary = small_run
    assert (out / "single_neuron.png").stat().st_size > 0
    with open(out / "single_neuron.json") as f:
        data = json.load(f)
    assert data["config"]["rounds"] == ROUNDS and data["config"]["iters"] == ITERS
    assert data["config"]["T"] == 30 and data["config"]["inputs"] == 200
    assert set(data["methods"]) == {"na", "stbp"}
    for m, s in data["methods"].items():
        for key in ("loss_mean", "loss_std"):
            assert len(s[key]) == ITERS
            assert all(math.isfinite(v) and v >= 0 for v in s[key]), (m, key)
        assert len(s["frac_matched"]) == ITERS + 1 and len(s["frac_hit_cumulative"]) == ITERS + 1
        assert len(s["first_hit"]) == ROUNDS
        assert all(-1 <= h <= ITERS for h in s["first_hit"])
        for key in ("frac_hit_by_65", "frac_hit_by_200", "frac_hit_by_end", "frac_matched_at_end"):
            assert 0.0 <= s[key] <= 1.0, (m, key)
        assert s["frac_hit_by_65"] <= s["frac_hit_by_200"]
        hits = [h for h in s["first_hit"] if h >= 0]
        if hits:
            assert s["mean_first_hit"] == pytest.approx(sum(hits) / len(hits))
        else:
            assert s["mean_first_hit"] is None
        assert s["final_loss_mean"] >= 0 and s["elapsed_s"] > 0
    # Both methods start from the same weights, inputs and targets: the same loss at iteration 0.
    assert data["methods"]["na"]["loss_mean"][0] == pytest.approx(data["methods"]["stbp"]["loss_mean"][0])
    assert data["methods"]["na"]["loss_mean"] == summary["methods"]["na"]["loss_mean"]


def test_na_loss_decreases(small_run):
    loss = small_run[1]["methods"]["na"]["loss_mean"]
    assert sum(loss[-5:]) / 5 < 0.8 * sum(loss[:5]) / 5


def test_deterministic(small_run):
    again = sn.run_experiment(None, rounds=ROUNDS, iters=ITERS, seed=0, progress=False)
    for m in ("na", "stbp"):
        a = {k: v for k, v in small_run[1]["methods"][m].items() if k != "elapsed_s"}
        b = {k: v for k, v in again["methods"][m].items() if k != "elapsed_s"}
        assert a == b, m
    other = sn.make_problem(ROUNDS, 1, 0.03)
    assert not torch.equal(other["x"], sn.make_problem(ROUNDS, 0, 0.03)["x"])


def test_rounds_independent():
    """A round trained inside the batch follows the same trajectory as that round trained alone."""
    problem = sn.make_problem(4, 3, 0.03, dtype=torch.float64)
    alone = {k: v[:, 2:3] if k != "w0" else v[2:3] for k, v in problem.items()}
    for m in ("na", "stbp"):
        batched = sn.train(m, problem, iters=10, optimizer="adam", lr=3e-3, progress=False)
        single = sn.train(m, alone, iters=10, optimizer="adam", lr=3e-3, progress=False)
        torch.testing.assert_close(batched["losses"][:, 2:3], single["losses"], rtol=1e-9, atol=1e-12)
        assert batched["first_hit"][2] == single["first_hit"][0]


def test_cli(tmp_path, capsys):
    sn.main(
        ["--out", str(tmp_path), "--rounds", "3", "--iters", "4", "--optimizer", "sgd", "--lr", "3e-4", "--no-progress"]
    )
    text = capsys.readouterr().out
    assert "NA" in text and "STBP" in text and "147" in text
    data = json.loads((tmp_path / "single_neuron.json").read_text())
    assert data["config"]["optimizer"] == "sgd" and data["config"]["lr"] == 3e-4
    assert len(data["methods"]["stbp"]["loss_mean"]) == 4
    with pytest.raises(SystemExit):
        sn.main(["--optimizer", "rmsprop"])
