"""The text of ``otviz evaluate``: a metrics summary (``fidelity.metrics_to_json``) as lines.

Computing and storing a run's metrics is the run's job: :func:`otviz.train.products.evaluate`."""
from __future__ import annotations


def format_summary(summary: dict) -> str:
    """One line per comparison and quantity: value, floor and ratio of each statistic."""
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
