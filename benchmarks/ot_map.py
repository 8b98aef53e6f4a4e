"""Neural OT map accuracy on Gaussian → Gaussian pairs, against the closed form and POT, in one process.

For each dimension d (``--dims``, default 2 16 128): a random pair P = N(m₁, Σ₁), Q = N(m₂, Σ₂)
(``otviz.ot.gaussian.random_gaussian``: Haar rotation, eigenvalues log-uniform in [0.5, 2], means
N(0, 1)), ``--n`` samples of each (unpaired), and

  * otviz  — ``otviz.ot.fit_ot_map(source, target, steps=--steps, …)`` (ICNN dual, REFERENCE §3);
  * POT    — ``ot.gaussian.empirical_bures_wasserstein_mapping(source, target)``: the closed-form
             map of the sample moments, the best any method can do from these samples when it
             knows the data are Gaussian (the anchor; otviz's ICNN does not assume it);

both measured on 10 000 fresh source points against the exact T*(x) = m₂ + A(x − m₁):
L2-UVP = 100·E‖T̂(x) − T*(x)‖²/tr Σ₂ in % (Korotin et al. 2021), the transport cost E‖T̂(x) − x‖²
against the exact W₂², the fit times and their ratio. Goal: otviz's L2-UVP ≤ 1 % at d = 128.

    .venv/bin/python benchmarks/ot_map.py [--dims 2 16 128] [--n 50000] [--steps 300]
        [--threads 1] [--seed 1] [--hidden 64 64] [--lr 2e-3] [--init identity|gaussian]

On the 2-core CPU machine, one thread, defaults (with other jobs on the other core): d = 128 takes
≈ 80 s and reaches L2-UVP ≈ 0.3 %; d = 16 ≈ 40 s, ≈ 0.06 %.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", type=int, nargs="+", default=[2, 16, 128])
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--hidden", type=int, nargs="+", default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--quadratic-rank", type=int, default=None, help="0: the published ψ without the quadratic term")
    ap.add_argument("--init", choices=("identity", "gaussian"), default=None,
                    help="the fit's starting map (OTMapConfig.init; default identity, the published start)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    import ot

    from otviz.ot import fit_ot_map
    from otviz.ot.gaussian import gaussian_ot_map, gaussian_w2_squared, l2_uvp, random_gaussian, sample_gaussian

    opts = {"steps": args.steps}
    if args.hidden:
        opts["hidden"] = tuple(args.hidden)
    if args.lr:
        opts["lr"] = args.lr
    if args.quadratic_rank is not None:
        opts["quadratic_rank"] = args.quadratic_rank
    if args.init:
        opts["init"] = args.init
    print(f"threads {args.threads}, n {args.n} per side, options {opts}")
    print(f"{'d':>4} {'otviz L2-UVP %':>15} {'POT L2-UVP %':>13} {'otviz cost':>11} {'POT cost':>9} {'exact W2²':>10}"
          f" {'otviz s':>8} {'POT s':>7} {'time ratio':>10}")
    for d in args.dims:
        rng = np.random.default_rng(args.seed * 1000 + d)
        m1, c1 = random_gaussian(d, rng)
        m2, c2 = random_gaussian(d, rng)
        src, tgt = sample_gaussian(m1, c1, args.n, rng), sample_gaussian(m2, c2, args.n, rng)
        a, b = gaussian_ot_map(m1, c1, m2, c2)
        x = sample_gaussian(m1, c1, 10_000, rng)
        exact = x @ a.T + b
        var, w2 = float(np.trace(c2)), gaussian_w2_squared(m1, c1, m2, c2)

        t = time.perf_counter()
        m = fit_ot_map(src, tgt, **opts)
        t_otviz = time.perf_counter() - t
        mapped = m.transport(x).astype(np.float64)

        t = time.perf_counter()
        a_pot, b_pot = ot.gaussian.empirical_bures_wasserstein_mapping(src, tgt)
        t_pot = time.perf_counter() - t
        pot = x @ a_pot + b_pot

        cost = lambda y: float(np.mean(np.sum((y - x) ** 2, 1)))  # noqa: E731
        print(f"{d:>4} {l2_uvp(mapped, exact, var):>15.3f} {l2_uvp(pot, exact, var):>13.3f} {cost(mapped):>11.3f}"
              f" {cost(pot):>9.3f} {w2:>10.3f} {t_otviz:>8.1f} {t_pot:>7.2f} {t_otviz / max(t_pot, 1e-9):>10.0f}",
              flush=True)


if __name__ == "__main__":
    main()
