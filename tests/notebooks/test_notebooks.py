"""Execute the teaching notebooks on a reduced size (OTVIZ_NOTEBOOK_SMALL=1)."""
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXPECTED = {  # text each notebook's outputs must contain: its training cell finished, its key numbers printed
    "01_otus_zee.ipynb": ["done", "otviz SW²"],
    "02_emdvae_wjets.ipynb": ["done", "EMD = ", "D1 = 2.00, D2 = 2.00, #(σ > β) = 2", "directions with KL > 0.1"],
    "03_otus_ttbar.ipynb": ["fraction of the (selected) x sample in S: 1.000", "m_W^had [GeV]", "done 1 epochs",
                            "P_D(S) of D(z) on the test z", "KS ×10⁻² on 2000 test events", "Reconstructed physics",
                            "2 runs; ['done', 'done']", "KS/floor m_t^had"],
    "04_turbosim_vs_otus.ipynb": ["turbosim: done 1 epochs", "no-supervised: done 1 epochs", "no-SW: done 1 epochs", "Reconstructed physics",
                                  "Turbo-Sim: max(published Turbo-Sim, 1.5 × floor)", "OTUS: max(published OTUS, 1.5 × floor)", "systems ['OTUS', 'Turbo-Sim'] paired_fraction [0.0, 1.0]",
                                  "m_t_had"],
    "05_ot_calibration.ipynb": ["ψ is convex along the line: True", "d =  16: L2-UVP", "calibration run: done",
                                "toy, class QCD: L2-UVP of the fitted map", "discriminator ROC AUC",
                                "signal efficiency at 0.1 mistag rate", "at mistag 0.1 (metrics.nc)"],
    "06_hadml.ipynb": ["clusters per event", "max |Σ hadrons − cluster|", "p₀/2", "violating four-momentum conservation: 0",
                       "v1 run: done", "test clusters", "cos_theta  1.5–3 GeV", "species (reference → generated)",
                       "v2 run: done", "W₁ to data"],
}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit notebooks without outputs"
    monkeypatch.setenv("OTVIZ_NOTEBOOK_SMALL", "1")
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.output_type == "stream")
    for expected in EXPECTED[path.name]:
        assert expected in text
