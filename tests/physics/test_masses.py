import pytest

from otviz.physics.masses import MASSES, mass_of, masses_for


def test_table_values_and_name_lookup():
    assert mass_of("e-") == mass_of("e+") == pytest.approx(0.51099895e-3, rel=1e-8)
    assert mass_of("mu-") == pytest.approx(0.1056583755) and mass_of("tau+") == pytest.approx(1.777, abs=1e-3)
    assert mass_of("b") == mass_of("b~") == 4.7  # MadGraph sm / OTUS
    for light in ("nu_e~", "u", "d~", "s", "c", "g", "gamma", "MET", "jet1", "jet4"):
        assert mass_of(light) == 0.0
    assert mass_of("Z") == pytest.approx(91.188, abs=0.01) and mass_of("W+") == pytest.approx(80.37, abs=0.02)
    assert mass_of("t~") == pytest.approx(172.6, abs=0.5) and mass_of("H") == pytest.approx(125.2, abs=0.2)
    assert all(m >= 0 for m in MASSES.values())
    assert masses_for(["e-", "MET"]) == {"e-": MASSES["e"], "MET": 0.0}
    with pytest.raises(KeyError, match="no mass"):
        mass_of("graviton")


def test_hadron_masses_by_pdg_id():
    import numpy as np

    from otviz.physics.masses import mass_of_pid

    assert mass_of_pid(111) == pytest.approx(0.1349768)
    assert mass_of_pid(-211) == pytest.approx(0.13957039)
    np.testing.assert_allclose(mass_of_pid(np.array([[211, -211], [111, 111]])),
                               [[0.13957039, 0.13957039], [0.1349768, 0.1349768]])
    with pytest.raises(KeyError, match="999"):
        mass_of_pid([999])
