import os

import numpy as np
import pytest
import xarray as xr

from otviz.data import DataValidationError, load, make_dataset, save
from otviz.physics import fourvec as fv


def sample(n=50, seed=0):
    rng = np.random.default_rng(seed)
    pt = rng.uniform(20, 60, (n, 2))
    z = fv.from_ptetaphim(pt, rng.normal(0, 1, (n, 2)), rng.uniform(-3, 3, (n, 2)), 0.000511)
    x = fv.from_ptetaphim(pt * 1.01, rng.normal(0, 1, (n, 2)), rng.uniform(-3, 3, (n, 2)), 0.0)
    return make_dataset(z, x, ("e-", "e+"), ("e-", "e+"), attrs={"process": "zee", "seed": seed})


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "good.nc"
    save(sample(), path)
    return path


def test_round_trip(good):
    ds = load(good)
    ref = sample()
    xr.testing.assert_identical(ds, ref)
    assert oct(os.stat(good).st_mode & 0o777) != oct(0o600)


def _write_raw(ds, path):
    ds.to_netcdf(path, engine="h5netcdf")
    return path


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda ds: ds.drop_vars("x"), "missing variable 'x'"),
        (lambda ds: ds.assign(z=ds["z"].transpose("event", "component", "z_particle")), "variable 'z' has dims"),
        (lambda ds: ds.assign_attrs(process=None) and ds.drop_attrs(), "missing attribute 'process'"),
    ],
)
def test_structural_errors_name_file_and_problem(tmp_path, corrupt, message):
    path = _write_raw(corrupt(sample()), tmp_path / "bad.nc")
    with pytest.raises(DataValidationError) as err:
        load(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_nan_and_inf_are_located(tmp_path):
    ds = sample()
    ds["x"].values[7, 1, 2] = np.nan
    ds["z"].values[3, 0, 0] = np.inf
    path = _write_raw(ds, tmp_path / "nan.nc")
    with pytest.raises(DataValidationError, match=r"variable 'z' has 1 NaN/inf values \(first at event=3"):
        load(path)


def test_mass_shell_violation_is_located(tmp_path):
    ds = sample()
    ds["x"].values[11, 1, 3] *= 0.5  # E below |p|
    path = _write_raw(ds, tmp_path / "tachyon.nc")
    with pytest.raises(DataValidationError, match=r"'x': 1 four-vectors with E² < \|p\|².*event=11, x_particle=e\+"):
        load(path)


def test_truncated_file_gives_clear_error(good, tmp_path):
    data = good.read_bytes()
    cut = tmp_path / "cut.nc"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataValidationError, match="cut.nc: cannot be read as a netCDF-4 sample"):
        load(cut)
    with pytest.raises(FileNotFoundError, match="nope.nc"):
        load(tmp_path / "nope.nc")


def test_bad_dataset_never_replaces_a_good_file(good):
    before = good.read_bytes()
    bad = sample()
    bad["x"].values[0, 0, 0] = np.nan
    with pytest.raises(DataValidationError, match="refusing to write"):
        save(bad, good, overwrite=True)
    with pytest.raises(FileExistsError):
        save(sample(seed=1), good)
    assert good.read_bytes() == before
    assert [p.name for p in good.parent.iterdir()] == ["good.nc"]  # no temporary left behind


def test_crash_during_write_leaves_target_untouched(good, monkeypatch):
    before = good.read_bytes()

    def crash(self, path, *a, **k):
        with open(path, "wb") as f:
            f.write(b"half a file")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", crash)
    with pytest.raises(KeyboardInterrupt):
        save(sample(seed=2), good, overwrite=True)
    assert good.read_bytes() == before
    assert [p.name for p in good.parent.iterdir()] == ["good.nc"]


def test_overwrite_replaces_atomically(good):
    save(sample(seed=5), good, overwrite=True)
    assert load(good).attrs["seed"] == 5


def test_describe_variables_gives_units_per_feature_and_the_particles():
    from otviz.data.io import describe_variables

    rng = np.random.default_rng(1)
    n = 7
    z = fv.from_ptetaphim(rng.uniform(200, 300, (n, 2)), rng.normal(0, 1, (n, 2)), rng.uniform(-3, 3, (n, 2)), 0.0)
    jets = make_dataset(z, rng.uniform(0, 1, (n, 5, 3)), ("q", "q~"), None, jet=rng.uniform(1, 2, (n, 4)),
                        attrs={"process": "wjets"})
    rows = {r["name"]: r for r in describe_variables(jets)}
    assert list(rows) == ["z", "x", "jet"]
    assert rows["z"] | {"contents": ""} == {"name": "z", "dims": ("event", "z_particle", "component"),
                                           "shape": (n, 2, 4), "dtype": "float32", "units": "GeV",
                                           "particles": ["q", "q~"], "contents": ""}
    assert rows["x"]["shape"] == (n, 5, 3) and rows["x"]["units"] == "pt: GeV, eta, phi: rad"
    assert rows["x"]["particles"] == [] and "weighted point cloud" in rows["x"]["contents"]
    assert rows["jet"]["dims"] == ("event", "jet_feature") and rows["jet"]["units"] == "pt: GeV, eta, phi: rad, m: GeV"
    leptons = {r["name"]: r for r in describe_variables(sample(n=3))}
    assert leptons["x"]["units"] == "GeV" and leptons["x"]["particles"] == ["e-", "e+"]
    assert leptons["x"]["shape"] == (3, 2, 4) and leptons["x"]["contents"] == "detector-level four-vectors"
    extra = sample(n=3).assign(weight=(("event",), np.ones(3, np.float32)))
    extra["weight"].attrs.update(units="pb", long_name="event weight")
    assert describe_variables(extra)[-1] | {"dims": None} == {
        "name": "weight", "dims": None, "shape": (3,), "dtype": "float32", "units": "pb", "particles": [],
        "contents": "event weight"}
