"""Generation domains: the "simulation" and the pseudo-"data" configuration of a sample.

A domain changes the parton shower (extra Pythia settings) and the detector (every
particle-flow resolution scaled), so that the same process generated in two domains differs
the way simulation and collision data do in "Mind the Gap" style OT calibration (issue 14).

``sim``   today's settings exactly: no extra Pythia setting, the detector as configured.
``data``  * FSR and ISR renormalisation scale doubled, μ_R → 2 μ_R. Pythia's showers evaluate
            α_s at ``renormMultFac``·p⊥² (Pythia 8 manual, "Timelike Showers" and "Spacelike
            Showers", ``TimeShower:renormMultFac`` / ``SpaceShower:renormMultFac``, default 1),
            so μ_R² → 4 μ_R² is a factor 4: smaller α_s, less radiation.
          * particle-flow resolution 25 % worse: :meth:`DetectorConfig.scaled_resolution` (1.25).
"""
from __future__ import annotations

from dataclasses import dataclass

from . import detector as det


@dataclass(frozen=True)
class Domain:
    name: str
    description: str
    pythia_settings: tuple[str, ...]  # appended to the process's settings
    resolution_scale: float  # DetectorConfig.scaled_resolution factor (1: unchanged)

    def detector(self, cfg: det.DetectorConfig | None = None) -> det.DetectorConfig:
        """``cfg`` (default :class:`DetectorConfig`) as this domain's detector."""
        cfg = cfg or det.DetectorConfig()
        return cfg if self.resolution_scale == 1.0 else cfg.scaled_resolution(self.resolution_scale)


DOMAINS: dict[str, Domain] = {
    "sim": Domain("sim", "simulation: default Pythia showers and detector", (), 1.0),
    "data": Domain(
        "data",
        "pseudo-data: FSR and ISR mu_R -> 2 mu_R (renormMultFac = 4), particle-flow resolutions x 1.25",
        ("TimeShower:renormMultFac = 4", "SpaceShower:renormMultFac = 4"),
        1.25,
    ),
}


def get_domain(name: str) -> Domain:
    try:
        return DOMAINS[name]
    except (KeyError, TypeError):
        raise ValueError(f"--domain {name!r}: unknown domain; choose one of {', '.join(DOMAINS)}") from None
