import pytest

from otviz.physics.observables import label, observable, sig


def test_labels_read_like_physics():
    assert label("e-.pt") == "p_T(e⁻) [GeV]"
    assert label("e+.px") == "p_x(e⁺) [GeV]"
    assert label("eta") == "η"
    assert label("phi") == "φ [rad]"
    assert label("m_ee") == "m_ee [GeV]"
    assert label("beta_ht") == "β·H_T [GeV]"
    assert label("e-.E", prefix="z") == "z: E(e⁻) [GeV]"
    assert observable("e-.pz").unit == "GeV"


def test_unknown_observable_is_named():
    with pytest.raises(KeyError, match="'bogus'"):
        observable("bogus")


def test_three_significant_figures():
    assert sig(0.003981071705534973) == "0.00398"
    assert sig(1234.5) == "1.23e+03"
    assert sig(3.98107) == "3.98"
