"""EMD speed and accuracy on real jets: POT's exact ``ot.emd2`` loop (the anchor), GeomLoss
``SamplesLoss("sinkhorn")`` and otviz's ``exact`` and ``sinkhorn`` backends, in one process.

A batch of 100 pairs of shipped centred W jets × 50 particles, forward + backward (POT: forward
only), with each method's mean/max relative error against exact EMD. Prints CUDA timings for a
large batch when a GPU is present.

    .venv/bin/python benchmarks/emd.py [--batch 100] [--repeat 3]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import ot
import torch

from otviz.data import load
from otviz.ot.emd import emd, ground_cost

DATA = Path(__file__).resolve().parents[1] / "data"


def best_of(f, repeat):
    out, best = None, float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t)
    return out, best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    c = load(DATA / "wjets_centred.nc")["x"].values.astype(np.float64)[: 2 * a.batch]
    w = c[..., 0] / c[..., 0].sum(1, keepdims=True)
    p = c[..., 1:]
    wa, pa, wb, pb = (torch.as_tensor(t) for t in (w[: a.batch], p[: a.batch], w[a.batch:], p[a.batch:]))

    def pot():
        return np.array([ot.emd2(w[k], w[a.batch + k], ground_cost(pa[k:k + 1], pb[k:k + 1])[0].numpy())
                         for k in range(a.batch)])

    ref, t_pot = best_of(pot, a.repeat)
    rows = [("POT ot.emd2 loop (forward)", t_pot, ref)]

    def ours(backend):
        def f():
            x = pa.clone().requires_grad_()
            v = emd(wa, x, wb, pb, backend=backend)
            v.sum().backward()
            return v.detach().numpy()
        return f

    for backend in ("exact", "sinkhorn"):
        v, t = best_of(ours(backend), a.repeat)
        rows.append((f"otviz {backend} (fwd + bwd)", t, v))
    try:
        from geomloss import SamplesLoss

        for blur in (0.01, 0.003):
            loss = SamplesLoss("sinkhorn", p=1, blur=blur, scaling=0.9, debias=False, backend="tensorized")

            def gl():
                x = pa.clone().requires_grad_()
                v = loss(wa, x, wb, pb)
                v.sum().backward()
                return v.detach().numpy()

            v, t = best_of(gl, a.repeat)
            rows.append((f"GeomLoss sinkhorn blur={blur} (fwd + bwd)", t, v))
    except ImportError:
        print("geomloss not installed: pip install geomloss")
    print(f"{a.batch} jet pairs x 50 particles, torch threads = {torch.get_num_threads()}")
    for name, t, v in rows:
        rel = np.abs(v - ref) / ref
        print(f"{name:42s} {t * 1000:9.1f} ms  POT/this {t_pot / t:6.2f}x  rel. error mean {rel.mean():.2e} max {rel.max():.2e}")
    if torch.cuda.is_available():
        big = 10_000
        idx = np.random.default_rng(0).integers(0, len(w), (2, big))
        cw = [torch.as_tensor(w[i]).cuda() for i in idx]
        cp = [torch.as_tensor(p[i]).cuda() for i in idx]

        def cuda():
            x = cp[0].clone().requires_grad_()
            emd(cw[0], x, cw[1], cp[1], backend="sinkhorn").sum().backward()
            torch.cuda.synchronize()

        cuda()
        _, t = best_of(cuda, a.repeat)
        print(f"otviz sinkhorn CUDA, {big} pairs: {t * 1000:.1f} ms ({torch.cuda.get_device_name()})")


if __name__ == "__main__":
    main()
