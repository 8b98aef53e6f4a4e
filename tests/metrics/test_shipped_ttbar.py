"""The shipped tt̄ OTUS run (data/pretrained/otus-ttbar): what data/pretrained/README.md states of it."""
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import otviz
from otviz.physics import reconstruct_ttbar
from otviz.train.products import read_ks_table

RUN = Path(__file__).resolve().parents[2] / "data" / "pretrained" / "otus-ttbar"


def test_the_shipped_ttbar_run_decodes_gev_events_and_its_stored_table_meets_the_stated_goals():
    run = otviz.load_run(RUN)
    assert run.kind == "otus-ttbar"
    with xr.open_dataset(RUN.parents[1] / "ttbar_test.nc") as t:
        z = np.array(t["z"].values[:3000])
    x = run.model.decode(z).detach().numpy()
    assert x.shape == (3000, 6, 4)
    np.testing.assert_array_equal(x[:, 1, 2], 0.0)  # MET has no p_z
    assert np.allclose(x[:, 2:, 3] ** 2, (x[:, 2:, :3] ** 2).sum(-1), rtol=1e-4)  # massless jets
    m = reconstruct_ttbar(x.astype(np.float64))
    assert 70 < np.median(m["m_W_had"]) < 95 and 150 < np.median(m["m_t_lep"]) < 195
    assert 0.45 < run.model.p_accept(z) < 0.6  # P_D(S) as stated (0.514 on the whole test sample)
    ks = read_ks_table(RUN)
    for obs in ("m_tt", "m_t_lep", "m_t_had", "jet1.pz"):  # the four the README lists as met
        assert float(ks["ks"].sel(observable=obs)) <= float(ks["goal"].sel(observable=obs))
    np.testing.assert_allclose(ks["ks_ratio"], ks["ks"] / ks["ks_floor"])
    assert float(ks["ks_ratio"].max()) < 15  # every value within 15× its floor (README: up to 14.2)
