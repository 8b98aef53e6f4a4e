"""Generation throughput: bare Pythia 8 (the anchor) against otviz, and Dask scaling.

For each process, in one Python process:
  * anchor   — bare ``pythia8mc`` ``nextBatch`` with the same settings, one core (generated ev/s);
  * otviz    — ``generate_chunk`` in-process, one core: Pythia + detector + selection;
  * dask 1/2 — ``otviz.data.generate.generate`` on a LocalCluster with 1 and 2 workers
               (accepted ev/s, cluster start-up included), and their ratio;
  * for zee, the fast path (no MPI, no hadronisation) against full Pythia.

    .venv/bin/python benchmarks/generation.py [--scale 1.0] [--process zee ttbar wjets] [--dask-only [--repeat 3]]

``--dask-only`` runs only the Dask 1- and 2-worker generations (the 2/1 ratio; goal ≥ 1.8, e.g.
``--process zee --scale 5 --dask-only``: 30 000 events, ≈ 22 s on one worker of the idle 2-core
machine, of which ≈ 1 s is cluster start-up and shut-down), ``--repeat`` times
(1 then 2 workers, alternating, so both see the same machine load), and prints two 2/1 ratios:

  * end to end   — events / ``generate``'s wall time, cluster start-up and shut-down included
                   (both cases start and stop a cluster: what a user waits for);
  * steady state — events / the work phase only (cluster up → last chunk back), so the fixed
                   start-up/shut-down cost, which does not shrink with more workers, is left out;

with the phases (start-up, work, close, merge), the workers' utilisation (the chunks' summed wall
time / (workers × work phase)) and the chunks' CPU/wall (below ~95 %: the workers shared their
cores with other processes). The medians over the repeats are printed last. On a shared machine
the 2-worker case needs both cores: read ``uptime`` and CPU/wall before trusting a ratio.
"""
from __future__ import annotations

import argparse
import time

from otviz.data.generate import generate
from otviz.data.pythia import generate_chunk, make_pythia, pythia_settings

BASE = {"zee": 6000, "ttbar": 1500, "wjets": 600}


def bare_pythia(process, n, fast=True, seed=1):
    py = make_pythia(pythia_settings(process, seed, fast))
    t = time.perf_counter()
    done = 0
    while done < n:
        done += len(py.nextBatch(min(1000, n - done)).prt)
    return done / (time.perf_counter() - t)


def in_process(process, n, fast=True):
    t = time.perf_counter()
    out = generate_chunk(process, n, seed=1, fast=fast)
    dt = time.perf_counter() - t
    return n / dt, out["n_generated"] / dt


def dask_rate(process, n, workers, fast=True):
    _, stats = generate(process, n, seed=1, workers=workers, fast=fast, progress=False,
                        chunk_size=max(n // 8, 50))
    return stats["events_per_s"], stats["generated_per_s"]


def dask_phases(process, n, workers, fast=True):
    """(end-to-end ev/s, steady-state ev/s, stats) of one Dask generation."""
    _, stats = generate(process, n, seed=1, workers=workers, fast=fast, progress=False,
                        chunk_size=max(n // 8, 50))
    return stats["events_per_s"], n / stats["phases"]["work"], stats


def _describe(stats, workers):
    p = stats["phases"]
    wall, cpu = sum(stats["chunk_seconds"]), sum(stats["chunk_cpu_seconds"])
    return (f"{stats['seconds']:5.1f} s = start-up {p['startup']:.1f} + work {p['work']:.1f} + close {p['close']:.1f}"
            f" (merge {p['merge']:.2f}); utilisation {wall / (workers * p['work']):.0%}, chunks' CPU/wall "
            f"{cpu / wall:.0%}")


def dask_only(proc, n, repeat):
    import statistics

    ends, steadies = [], []
    for r in range(repeat):
        e1, s1, st1 = dask_phases(proc, n, 1)
        e2, s2, st2 = dask_phases(proc, n, 2)
        ends.append(e2 / e1)
        steadies.append(s2 / s1)
        print(f"{proc:6s} {n} events, run {r + 1}: 1 worker {_describe(st1, 1)}\n"
              f"{'':6s} {'':{len(str(n))}s}         2 workers {_describe(st2, 2)}\n"
              f"{'':6s} 2/1 end to end {e2 / e1:.2f} ({e1:.0f} → {e2:.0f} accepted ev/s), "
              f"steady state {s2 / s1:.2f} ({s1:.0f} → {s2:.0f})", flush=True)
    print(f"{proc:6s} median of {repeat}: 2/1 end to end {statistics.median(ends):.2f}, "
          f"steady state {statistics.median(steadies):.2f}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--process", nargs="+", default=list(BASE))
    ap.add_argument("--dask-only", action="store_true", help="only the Dask 1- and 2-worker rates")
    ap.add_argument("--repeat", type=int, default=1, help="with --dask-only: runs (medians printed)")
    args = ap.parse_args()
    for proc in args.process:
        n = int(BASE[proc] * args.scale)
        if args.dask_only:
            dask_only(proc, n, args.repeat)
            continue
        anchor = bare_pythia(proc, n)
        acc1, gen1 = in_process(proc, n // 3)
        d1, _ = dask_rate(proc, n, 1)
        d2, _ = dask_rate(proc, n, 2)
        print(f"{proc:6s} fast: bare Pythia {anchor:7.0f} gen ev/s | otviz 1 core {gen1:7.0f} gen ev/s "
              f"(ratio otviz/Pythia {gen1 / anchor:.2f}), {acc1:6.0f} accepted ev/s | "
              f"Dask 1 worker {d1:6.0f}, 2 workers {d2:6.0f} accepted ev/s (2/1 = {d2 / d1:.2f})", flush=True)
        if proc == "zee":
            nf = n // 5
            full_anchor = bare_pythia(proc, nf, fast=False)
            facc, fgen = in_process(proc, nf // 2, fast=False)
            print(f"zee    full: bare Pythia {full_anchor:7.0f} gen ev/s | otviz 1 core {fgen:7.0f} gen ev/s, "
                  f"{facc:6.0f} accepted ev/s | fast/full accepted-rate ratio {acc1 / facc:.1f}", flush=True)


if __name__ == "__main__":
    main()
