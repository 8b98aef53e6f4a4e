"""The shipped otus-zee run meets the fidelity goals of issue 10 (its stored otviz evaluate output)."""
import json
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[2] / "data" / "pretrained" / "otus-zee"
COMPONENTS = [f"{p}.{c}" for p in ("e-", "e+") for c in ("px", "py", "pz", "E")]


@pytest.fixture(scope="module")
def metrics():
    return json.loads((RUN / "metrics.json").read_text())


def test_shipped_run_m_ee_width_within_ten_percent(metrics):
    pk = metrics["comparisons"]["x_vs_x_tilde_prime"]["m_ee_peak"]  # fast simulation D(z)
    assert abs(pk["iqr_ratio"] - 1) < 0.10
    assert abs(pk["shift"]) < 0.3  # GeV


@pytest.mark.parametrize("comparison", ["z_vs_z_tilde", "x_vs_x_tilde", "x_vs_x_tilde_prime"])
def test_shipped_run_components_within_twice_their_floor(metrics, comparison):
    q = metrics["comparisons"][comparison]["quantities"]
    ratios = {c: q[c]["ks"]["ratio"] for c in COMPONENTS}
    assert max(ratios.values()) <= 2.0, ratios


def test_shipped_run_uses_the_mass_table():
    cfg = json.loads((RUN / "config.json").read_text())
    assert cfg["model_config"]["masses"] == {"e-": 0.51099895e-3, "e+": 0.51099895e-3}
