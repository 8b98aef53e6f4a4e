"""Sliced Wasserstein speed: POT (the anchor) against otviz, in one process.

M = 20,000 events per side, d = 24, L = 1,000 directions. POT's
``ot.sliced_wasserstein_distance`` (forward only, NumPy), a plain torch version (project,
``torch.sort``, mean; forward + backward) and ``otviz.ot.sliced_wasserstein`` (forward +
backward), all with the same directions; prints seconds and ratios, plus CUDA timings when a
GPU is present.

    .venv/bin/python benchmarks/sliced.py [--m 20000] [--d 24] [--l 1000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import time


import ot
import torch

from otviz.ot.sliced import random_directions, sliced_wasserstein, sliced_wasserstein_reference


def best_of(f, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--m", type=int, default=20_000)
    ap.add_argument("--d", type=int, default=24)
    ap.add_argument("--l", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(a.m, a.d, generator=g)
    y0 = 1.2 * torch.randn(a.m, a.d, generator=g) + 0.1
    theta = random_directions(a.l, a.d, g)
    print(f"M = {a.m}, d = {a.d}, L = {a.l}, torch threads = {torch.get_num_threads()}")

    def pot():
        return ot.sliced_wasserstein_distance(x0.numpy(), y0.numpy(), projections=theta.T.numpy(), p=2)

    def plain():
        x = x0.clone().requires_grad_()
        sliced_wasserstein_reference(x, y0, theta).backward()

    def ours():
        x = x0.clone().requires_grad_()
        sliced_wasserstein(x, y0, theta=theta).backward()

    v_pot = float(pot()) ** 2
    v_ours = float(sliced_wasserstein(x0.double(), y0.double(), theta=theta.double()))
    t_pot = best_of(pot, a.repeat)
    t_plain = best_of(plain, a.repeat)
    t_ours = best_of(ours, a.repeat)
    print(f"value: POT² {v_pot:.6f}, otviz {v_ours:.6f} (rel. diff {abs(v_pot - v_ours) / v_pot:.1e})")
    print(f"POT forward             {t_pot:7.3f} s")
    print(f"plain torch fwd + bwd   {t_plain:7.3f} s")
    print(f"otviz fwd + bwd         {t_ours:7.3f} s")
    print(f"ratio POT / otviz = {t_pot / t_ours:.1f}x, plain torch / otviz = {t_plain / t_ours:.1f}x")
    if torch.cuda.is_available():
        xc, yc, tc = x0.cuda(), y0.cuda(), theta.cuda()

        def cuda():
            x = xc.clone().requires_grad_()
            sliced_wasserstein(x, yc, theta=tc).backward()
            torch.cuda.synchronize()

        cuda()
        print(f"otviz CUDA fwd + bwd    {best_of(cuda, a.repeat):7.4f} s ({torch.cuda.get_device_name()})")
    else:
        print("no CUDA device: GPU timing skipped")



if __name__ == "__main__":
    main()
