"""``otviz evaluate RUNDIR``: compute a run's fidelity metrics and store them in the run."""
from __future__ import annotations

import json
from pathlib import Path

from ..atomic import atomic_path, write_bytes
from ..data.io import load as load_sample
from ..paths import resolve as resolve_path
from .fidelity import evaluate_otus, metrics_to_json


def evaluate_run(rundir, test_path=None, n_projections: int = 1000, seed: int = 0):
    """Evaluate the run's model on ``test_path`` (default its config's test_data); writes
    ``metrics.nc`` and ``metrics.json`` atomically into the run directory."""
    from ..train.run import load_run

    run = load_run(rundir)
    test_path = test_path or run.config.test_data
    if not test_path:
        raise ValueError(f"{rundir}: no test sample configured; pass --test")
    ds = evaluate_otus(run.model, load_sample(resolve_path(test_path)), n_projections=n_projections, seed=seed)
    ds.attrs["test_data"] = str(test_path)
    summary = metrics_to_json(ds)
    rundir = Path(rundir)
    with atomic_path(rundir / "metrics.nc") as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")
    write_bytes(rundir / "metrics.json", json.dumps(summary, indent=1).encode())
    return ds, summary


def format_summary(summary: dict) -> str:
    lines = []
    for comp, c in summary["comparisons"].items():
        lines.append(f"{comp}: SW² = {c['sw']:.4g} GeV² (floor {c['sw_floor']:.4g}, ratio {c['sw_ratio']:.2f})")
        for q, st in c["quantities"].items():
            lines.append(
                f"  {q:10s} KS {st['ks']['value']:.4f} (floor {st['ks']['floor']:.4f}, ×{st['ks']['ratio']:.2f})"
                f"  W1 {st['w1']['value']:.4g} (×{st['w1']['ratio']:.2f})  χ²/dof {st['chi2r']['value']:.2f}"
                f" (floor {st['chi2r']['floor']:.2f})"
            )
        if "m_ee_peak" in c:
            pk = c["m_ee_peak"]
            t, m = pk["truth"], pk["model"]
            lines.append(
                f"  m_ee width: IQR {m['iqr']:.2f} GeV (truth {t['iqr']:.2f}, ×{pk['iqr_ratio']:.2f}); "
                f"Voigt FWHM {m['fwhm']:.2f} GeV (truth {t['fwhm']:.2f}, ×{pk['fwhm_ratio']:.2f}); "
                f"peak {m['mass']:.2f} GeV (truth {t['mass']:.2f}, shift {pk['shift']:+.2f})"
            )
    a = summary["attrs"]
    if "m_ee_peak_x" in a:
        lines.append(f"m_ee peak: x {a['m_ee_peak_x']:.2f} GeV, x̃′ {a['m_ee_peak_x_tilde_prime']:.2f} GeV "
                     f"(shift {a['m_ee_peak_shift']:+.2f} GeV)")
    lines.append("closure (D(z) vs true pairs, in bins of z): mean pull | width ratio")
    for q, c in summary["closure"].items():
        lines.append(f"  {q:10s} {c['mean_pull']:.3f} | {c['width_ratio']:.3f}")
    return "\n".join(lines)
