"""Pairwise exact EMDs for D_corr: otviz's ``pairwise_emd`` against the anchors.

On ``--jets`` shipped centred W jets (pT/H_T, η, φ; R = 1), one Python process:
  * otviz      — ``otviz.metrics.dimension.pairwise_emd`` (POT's network simplex per pair, costs
                 of a row computed at once, padding dropped);
  * per-batch  — the previous implementation: ``otviz.ot.emd.emd(backend="exact")`` on batches
                 of pairs in 2 threads (extrapolated from ``--sample`` jets, it is slow);
  * wasserstein — ``wasserstein.PairwiseEMD`` (Komiske et al.'s C++, 2 OpenMP threads) when it
                 imports: its 1.1.0 wheels need NumPy < 2, so it is not an otviz dependency.

    .venv/bin/python benchmarks/dimension.py [--jets 1000] [--sample 150]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from otviz.data.io import load
from otviz.data.jets import normalised_jets
from otviz.metrics.dimension import pairwise_emd
from otviz.ot.emd import emd
from otviz.paths import resolve


def per_batch(w, p, workers=2):
    from concurrent.futures import ThreadPoolExecutor

    iu, ju = np.triu_indices(len(w), k=1)
    chunks = np.array_split(np.arange(len(iu)), workers * 8)

    def work(idx):
        i, j = iu[idx], ju[idx]
        return emd(*(torch.as_tensor(t) for t in (w[i], p[i], w[j], p[j])), backend="exact").numpy()

    with ThreadPoolExecutor(workers) as pool:
        return np.concatenate(list(pool.map(work, chunks)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jets", type=int, default=1000)
    ap.add_argument("--sample", type=int, default=150, help="jets for the slow per-batch reference")
    args = ap.parse_args()
    jets, _ = normalised_jets(load(resolve("data/wjets_centred.nc")))
    sub = jets[np.sort(np.random.default_rng(0).choice(len(jets), args.jets, replace=False))].astype(float)
    w, p = sub[..., 0], sub[..., 1:]
    pairs = args.jets * (args.jets - 1) // 2

    t = time.perf_counter()
    ours = pairwise_emd(w, p)
    t_ours = time.perf_counter() - t
    print(f"otviz pairwise_emd     {args.jets} jets ({pairs} pairs): {t_ours:7.1f} s", flush=True)

    m = args.sample
    t = time.perf_counter()
    old = per_batch(w[:m], p[:m])
    t_old = (time.perf_counter() - t) * pairs / (m * (m - 1) // 2)
    iu, ju = np.triu_indices(m, k=1)
    dev = np.max(np.abs(old - ours[iu, ju]) / ours[iu, ju])
    print(f"per-batch emd(exact)   {args.jets} jets: {t_old:7.1f} s (extrapolated from {m}); "
          f"otviz is {t_old / t_ours:.1f}× faster; max relative difference {dev:.1e}", flush=True)

    try:
        import wasserstein

        pe = wasserstein.PairwiseEMD(R=1.0, beta=1.0, norm=True, num_threads=2, verbose=0)
        events = [np.ascontiguousarray(np.c_[wi[wi > 0], pi[wi > 0]]) for wi, pi in zip(w, p)]
        t = time.perf_counter()
        pe(events)
        ref = pe.emds()
        t_w = time.perf_counter() - t
        dev = np.max(np.abs(ref - ours)[ours > 0] / ours[ours > 0])
        print(f"wasserstein.PairwiseEMD {args.jets} jets: {t_w:7.1f} s (2 threads); otviz/wasserstein time "
              f"{t_ours / t_w:.2f}; max relative difference {dev:.1e}", flush=True)
    except Exception as err:  # noqa: BLE001 - the anchor is optional (NumPy 2 breaks its 1.1.0 wheels)
        print(f"wasserstein.PairwiseEMD unavailable: {type(err).__name__}: {str(err).splitlines()[0]}")


if __name__ == "__main__":
    main()
