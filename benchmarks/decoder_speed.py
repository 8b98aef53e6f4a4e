"""Fast simulation speed: a trained decoder D(z) against the Pythia 8 + detector chain, in one process.

For each run (``--runs``), on the same CPU and in one Python process:
  * decoder — ``otviz.load_run(RUN).model.decode(z)`` under ``torch.no_grad()`` on a batch of
              ``--batch`` events: z (events, particles, 4) float32 GeV from the run's test sample
              (``run.config.test_data``, variable ``z``), tiled to the batch size; 2 warm-up calls,
              then the median of ``--repeat`` timed calls (events/s);
  * chain   — ``otviz.data.pythia.generate_chunk`` for the sample's process (``process`` attribute
              of the test sample, with its ``fast`` flag and ``detector_config``), ``--events``
              accepted events, Pythia initialisation included (timed separately and printed):
              accepted events/s (events that end in the sample) and generated events/s
              (``n_generated``, events Pythia made, before the selection); one warm-up chunk of a
              few events first (imports, FastJet's banner);
  * ratio   — decoder events/s / chain accepted events/s (and / generated events/s).

Goal: ratio ≥ 1000 on the same CPU (``--device cpu``, or ``auto`` without a GPU). The chain is
single-threaded whatever ``--threads`` says; ``--threads`` (default 1, so both sides use one core)
sets ``torch.set_num_threads`` for the decoder and is printed. With ``--device cuda`` the ratio
compares a GPU with one CPU core and is printed as such.

    .venv/bin/python benchmarks/decoder_speed.py [--runs DIR [DIR ...]] [--batch 10000]
        [--device auto|cpu|cuda] [--threads 1] [--events 1000] [--repeat 20]

Default runs: ``data/pretrained/otus-ttbar``, plus ``data/pretrained/turbosim-ttbar`` when that
directory exists (any run whose model has ``.decode(z)`` on parton four-vectors works, e.g.
``data/pretrained/otus-zee`` for Z→ee). The default (tt̄, 1000 events) takes ≈ 10 s on the idle
2-core CPU machine, where the chain makes ≈ 180 accepted (≈ 750 generated) tt̄ events/s and
otus-ttbar's decoder 1–2 × 10⁶ events/s on one thread (ratio ≈ 6 000–10 000); Z→ee (otus-zee):
≈ 1 750 accepted events/s, ratio ≈ 500.

The decoder's time per batch is bimodal from one process to the next (otus-ttbar, 10 000 events,
one thread: ≈ 5 or ≈ 9.5 ms): glibc's malloc returns the large activations to the system and
page-faults them back in on every call unless its mmap threshold has grown;
``MALLOC_MMAP_THRESHOLD_=268435456`` in the environment gives the fast mode every time. On a
shared machine read ``uptime`` first: another job on the cores slows either side, and
``--threads 2`` with one core taken is far slower than one thread (OpenMP threads waiting for each
other).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

import otviz
from otviz.data import detector as det
from otviz.data.io import load
from otviz.data.pythia import generate_chunk, make_pythia, pythia_settings
from otviz.paths import resolve

DEFAULT_RUNS = ["data/pretrained/otus-ttbar", "data/pretrained/turbosim-ttbar"]


def default_runs() -> list[str]:
    """otus-ttbar, and turbosim-ttbar when it exists (it is optional)."""
    return [DEFAULT_RUNS[0]] + [r for r in DEFAULT_RUNS[1:] if resolve(r).is_dir()]


def test_sample(run):
    """(z float32 array (events, particles, 4) GeV, the sample's attributes) of the run's test sample."""
    ds = load(resolve(run.config.test_data))
    if "z" not in ds.variables:
        raise ValueError(f"{run.config.test_data}: no variable 'z'")
    return ds["z"].values.astype(np.float32), dict(ds.attrs)


def tile(z: np.ndarray, batch: int) -> np.ndarray:
    """The first ``batch`` events of z, repeated when the sample has fewer."""
    return np.ascontiguousarray(np.take(z, np.arange(batch) % len(z), axis=0))


def decoder_rate(model, z: np.ndarray, device: str, repeat: int, warmup: int = 2):
    """(median events/s, median seconds per batch) of ``model.decode(z)``."""
    zt = torch.from_numpy(z).to(device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    times = []
    with torch.no_grad():
        for i in range(warmup + repeat):
            sync()
            t = time.perf_counter()
            x = model.decode(zt)
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - t)
    if x.shape[0] != len(z):
        raise ValueError(f"decode returned {tuple(x.shape)} for {len(z)} events")
    dt = statistics.median(times)
    return len(z) / dt, dt


def chain_rate(process: str, n: int, fast: bool, cfg: det.DetectorConfig):
    """Pythia + detector + selection, ``generate_chunk`` in-process: dict of the rates and times."""
    generate_chunk(process, 5, seed=2, fast=fast, cfg=cfg)  # warm-up: imports, FastJet banner
    t = time.perf_counter()
    make_pythia(pythia_settings(process, 3, fast))
    init = time.perf_counter() - t
    t = time.perf_counter()
    out = generate_chunk(process, n, seed=1, fast=fast, cfg=cfg)
    dt = time.perf_counter() - t
    gen = int(out["n_generated"])
    return {"accepted": n / dt, "generated": gen / dt, "n_generated": gen, "seconds": dt, "init": init}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", nargs="+", default=None,
                    help="run directories (default: data/pretrained/otus-ttbar, plus "
                         "data/pretrained/turbosim-ttbar if it exists)")
    ap.add_argument("--batch", type=int, default=10000, help="decoder batch size (events)")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                    help="decoder device (auto: cuda if available)")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads for the decoder")
    ap.add_argument("--events", type=int, default=1000, help="accepted events for the Pythia + detector chain")
    ap.add_argument("--repeat", type=int, default=20, help="timed decoder calls (median)")
    a = ap.parse_args()

    device = ("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else a.device
    torch.set_num_threads(a.threads)
    runs = a.runs or default_runs()
    print(f"decoder: device {device}, torch threads {torch.get_num_threads()}, batch {a.batch}, "
          f"median of {a.repeat} (2 warm-up) | chain: {a.events} accepted events, one core | "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)

    chains: dict[tuple, dict] = {}
    rows = []
    for path in runs:
        try:
            run = otviz.load_run(path, device=device)
            z, attrs = test_sample(run)
            rate, dt = decoder_rate(run.model, tile(z, a.batch), device, a.repeat)
        except Exception as exc:  # a run without decode(z) on parton four-vectors: say so, go on
            print(f"{path}: skipped ({type(exc).__name__}: {exc})", flush=True)
            continue
        process = str(attrs["process"])
        fast = bool(int(attrs.get("fast", 1)))
        cfg_json = attrs.get("detector_config")
        key = (process, fast, cfg_json)
        if key not in chains:
            cfg = det.DetectorConfig.from_json(cfg_json) if cfg_json else det.DetectorConfig()
            chains[key] = chain_rate(process, a.events, fast, cfg)
            c = chains[key]
            print(f"chain {process} ({'fast' if fast else 'full'}): {a.events} accepted of "
                  f"{c['n_generated']} generated in {c['seconds']:.1f} s (Pythia init {c['init']:.2f} s)",
                  flush=True)
        c = chains[key]
        rows.append((path, process, rate, dt, c))

    if not rows:
        raise SystemExit("no run could be benchmarked")
    same = "" if device == "cpu" else f"  (decoder on {device}: not the same CPU)"
    print(f"\n{'run':34s} {'proc':5s} {'decoder ev/s':>13s} {'ms/batch':>9s} {'chain acc ev/s':>15s} "
          f"{'chain gen ev/s':>15s} {'ratio acc':>10s} {'ratio gen':>10s}")
    for path, process, rate, dt, c in rows:
        print(f"{str(path):34s} {process:5s} {rate:13.0f} {1e3 * dt:9.2f} {c['accepted']:15.1f} "
              f"{c['generated']:15.1f} {rate / c['accepted']:10.0f} {rate / c['generated']:10.0f}")
    print(f"goal: ratio acc (decoder / chain accepted ev/s) ≥ 1000 on the same CPU; threads "
          f"{torch.get_num_threads()}{same}", flush=True)


if __name__ == "__main__":
    main()
