"""Command line: ``otviz generate …`` and ``otviz info …``."""
from __future__ import annotations

import argparse
import json
import shlex
import sys


def _cmd_generate(args) -> int:
    from .data.detector import DetectorConfig
    from .data.generate import generate_to_file

    cfg = DetectorConfig.from_json(open(args.detector).read()) if args.detector else DetectorConfig()
    out = args.out or f"runs/{args.process}_seed{args.seed}_n{args.events}.nc"
    command = "otviz " + " ".join(shlex.quote(a) for a in args.argv)
    ds, stats = generate_to_file(
        out,
        overwrite=args.force,
        process=args.process,
        n_events=args.events,
        seed=args.seed,
        workers=args.workers,
        scheduler=args.scheduler,
        chunk_size=args.chunk_size,
        fast=not args.full,
        centre=args.centre,
        cfg=cfg,
        progress=not args.quiet,
        command=command,
    )
    print(
        f"wrote {stats['path']}: {stats['events']} {args.process} events "
        f"({stats['generated']} generated, efficiency {stats['events'] / stats['generated']:.3f}) "
        f"in {stats['seconds']:.1f} s = {stats['events_per_s']:.0f} events/s accepted, "
        f"{stats['generated_per_s']:.0f} events/s generated, {stats['bytes'] / 1e6:.2f} MB"
    )
    if args.json:
        print(json.dumps(stats))
    return 0


def _cmd_info(args) -> int:
    from .data.io import load
    from .physics import fourvec as fv

    ds = load(args.path)
    print(f"{args.path}: process={ds.attrs['process']} events={ds.sizes['event']} (valid)")
    for name in ("z", "x"):
        print(f"  {name}{tuple(ds[name].dims)} = {tuple(ds[name].shape)}")
    if ds.attrs["process"] == "zee":
        import numpy as np

        from .metrics.peak import fit_peak

        for name in ("z", "x"):
            m = fv.invariant_mass(ds[name].values.astype(np.float64))
            f = fit_peak(m)
            print(
                f"  m_ee({name}): peak {f.mass:.2f} ± {f.mass_err:.2f} GeV, Voigt fit Γ = {f.gamma:.2f} GeV, "
                f"σ = {f.sigma:.2f} GeV, FWHM = {f.fwhm:.2f} GeV"
            )
    for k in ("seed", "n_generated", "selection_efficiency", "created", "command"):
        if k in ds.attrs:
            print(f"  {k}: {ds.attrs[k]}")
    return 0


def _cmd_train(args) -> int:
    if args.model == "emdvae-wjets":
        return _cmd_anneal(args)
    if len(args.out) != 1 or (args.data and len(args.data) != 1):
        raise ValueError("otus-zee trains one run: give one --out and at most one --data")
    args.out, args.data = args.out[0], (args.data[0] if args.data else None)
    from pathlib import Path

    from tqdm.auto import tqdm

    from .train.config import PRESETS
    from .train.trainer import TrainingRun

    out = Path(args.out)
    if (out / "config.json").exists():
        run = TrainingRun(out)
        print(f"resuming the run in {out}")
    else:
        overrides = {k: v for k, v in {
            "train_data": args.data, "test_data": args.test, "device": args.device, "seed": args.seed,
            "batch_size": args.batch_size, "n_projections": args.n_projections, "max_events": args.max_events,
            "checkpoint_every": args.checkpoint_every,
            "mass_feature": False if args.no_mass_feature else None,
        }.items() if v is not None}
        cfg = PRESETS[args.model](epochs=args.epochs, finetune_epochs=args.finetune_epochs, **overrides)
        run = TrainingRun(out, cfg)
    bar = tqdm(total=run.config.total_epochs, unit="epoch", desc=f"otviz train {run.config.model}",
               disable=args.quiet, file=sys.stderr)

    def progress(ev):
        if ev["type"] == "resumed":
            bar.update(ev["epoch"])
        elif ev["type"] == "epoch":
            bar.update(1)
            bar.set_postfix({k: f"{ev[k]:.4g}" for k in ("loss", "mse", "sw_z", "sw_x") if k in ev}
                            | {"ev/s": f"{ev['events_per_s']:.0f}"})
        elif ev["type"] == "nan_rollback":
            bar.write(f"non-finite loss: rolled back to epoch {ev['epoch']}, lr × {ev['lr_scale']}")

    status = run.run_blocking(progress)
    bar.close()
    secs = sum(h["seconds"] for h in run.history)
    print(f"{status}: {len(run.history)} epochs in {secs:.0f} s of training; run directory {out}")
    return 0 if status == "done" else 1


def _anneal_config(args, data):
    from .data.io import load
    from .models.emdvae import EMDVAEConfig
    from .train.annealing import emdvae_wjets_config

    centred = bool(int(load(data).attrs.get("centred", 0)))
    overrides = {k: v for k, v in {
        "device": args.device, "seed": args.seed, "batch_size": args.batch_size, "max_events": args.max_events,
        "max_epochs": args.max_epochs, "steps_per_epoch": args.steps_per_epoch, "lr": args.lr,
        "emd_backend": args.emd_backend, "threads": args.threads,
    }.items() if v is not None}
    cfg = emdvae_wjets_config(centred, schedule=args.schedule, n_betas=args.betas, beta_min=args.beta_min,
                              beta_max=args.beta_max, **overrides)
    cfg.train_data = data
    cfg.model_config = EMDVAEConfig(latent=args.latent, width=args.width)
    return cfg


def _cmd_anneal(args) -> int:
    """``otviz train emdvae-wjets``: one β-annealing run in this process, or several as Dask jobs."""
    from pathlib import Path

    from .train.annealing import AnnealingRun

    outs = [Path(o) for o in args.out]
    datas = args.data or ["data/wjets_centred.nc"]
    if len(datas) == 1 and len(outs) > 1:
        datas = datas * len(outs)
    if len(datas) != len(outs):
        raise ValueError(f"give one --data per --out ({len(datas)} data files for {len(outs)} run directories)")
    jobs = [(o, None if (o / "config.json").exists() else _anneal_config(args, d)) for o, d in zip(outs, datas)]
    if len(jobs) > 1 or args.scheduler:
        from .train.jobs import run_annealing_jobs

        for o, c in jobs:
            print(f"{o}: {'resuming' if c is None else 'new run on ' + c.train_data}")
        results = run_annealing_jobs(jobs, workers=args.workers, scheduler=args.scheduler)
        for r in results:
            print(f"{r['rundir']}: {r['status']} after {r['steps']} β steps {r['message']}")
        return 0 if all(r["status"] == "done" for r in results) else 1
    out, cfg = jobs[0]
    run = AnnealingRun(out, cfg)  # cfg None: resume

    def progress(ev):
        if args.quiet:
            return
        if ev["type"] == "epoch":
            print(f"β step {ev['beta_step'] + 1}/{ev['total_steps']} ({ev['pass_name']}, β = {ev['beta']:.4g}) "
                  f"epoch {ev['epoch'] + 1}: val loss {ev['val_loss']:.4g}, R {ev['val_rate']:.3f}, "
                  f"D {ev['val_distortion']:.3g}, {ev['jets_per_s']:.0f} jets/s", file=sys.stderr)
        elif ev["type"] in ("resumed", "nan_rollback"):
            print(f"{ev['type']}: β step {ev['beta_step'] + 1}, epoch {ev['epoch']}", file=sys.stderr)

    status = run.run_blocking(progress)
    secs = sum(h["seconds"] for h in run.history)
    print(f"{status}: {len(run.steps_done)} β steps, {len(run.history)} epochs in {secs:.0f} s of training; "
          f"run directory {out}")
    return 0 if status == "done" else 1


def _cmd_evaluate(args) -> int:
    from .metrics.evaluate import evaluate_run

    ds, summary = evaluate_run(args.rundir, test_path=args.test, n_projections=args.n_projections)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        from .metrics.evaluate import format_summary

        print(format_summary(summary))
    return 0


def _cmd_dimension(args) -> int:
    import time

    from .metrics.dimension import write_dimensionality
    from .train.run import load_run

    run = load_run(args.rundir)
    if run.kind != "emdvae":
        raise ValueError(f"{args.rundir}: not an EMD-VAE annealing run")
    t0 = time.perf_counter()
    ds = write_dimensionality(run, n_jets=args.jets, workers=args.workers)
    ht = ds.attrs["ht_median_GeV"]
    print(f"{args.rundir}/dimension.nc ({time.perf_counter() - t0:.1f} s; H_T median {ht:.0f} GeV)")
    print("  β_mid     β·H_T [GeV]   D1      D2")
    for b, d1, d2 in zip(ds.beta_mid.values, ds.D1.values, ds.D2.values):
        print(f"  {b:8.4g}  {b * ht:9.3g}   {d1:6.2f}  {d2:6.2f}")
    print("  β         R       D=<EMD²>   active dims (KL > 0.1)")
    for i, b in enumerate(ds.beta.values):
        kl = ds.kl_per_dim.values[i]
        print(f"  {b:8.4g}  {ds.rate.values[i]:6.2f}  {ds.distortion.values[i]:9.3g}  {int((kl > 0.1).sum())}")
    print("  D_corr(Q):  " + ", ".join(f"{q:.3g}: {d:.2f}" for q, d in zip(ds.q_mid.values, ds.D_corr.values)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="otviz", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    g = sub.add_parser("generate", help="generate a Pythia 8 sample with the detector model")
    g.add_argument("process", choices=["zee", "ttbar", "wjets"])
    g.add_argument("--events", type=int, required=True, help="number of accepted events")
    g.add_argument("--out", help="output netCDF file (default runs/PROCESS_seedS_nN.nc)")
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    g.add_argument("--scheduler", help="address of an existing Dask scheduler (instead of a LocalCluster)")
    g.add_argument("--chunk-size", type=int, help="accepted events per task (part of the seed's meaning)")
    g.add_argument("--full", action="store_true", help="full Pythia (MPI and hadronisation on)")
    g.add_argument("--centre", action="store_true", help="wjets: centre constituents on the jet axis")
    g.add_argument("--detector", help="JSON file with DetectorConfig overrides")
    g.add_argument("--force", action="store_true", help="replace an existing output file")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.add_argument("--json", action="store_true", help="also print the timing as JSON")
    g.set_defaults(func=_cmd_generate)

    t = sub.add_parser("train", help="train a model (resumes if RUNDIR holds a run)")
    t.add_argument("model", choices=["otus-zee", "emdvae-wjets"])
    t.add_argument("--data", nargs="+", help="training sample (default data/zee_train.nc, data/wjets_centred.nc); "
                   "emdvae-wjets: one per --out")
    t.add_argument("--test", help="test sample for evaluation (default data/zee_test.nc)")
    t.add_argument("--out", required=True, nargs="+",
                   help="run directory; emdvae-wjets: several run as parallel Dask jobs")
    t.add_argument("--epochs", type=int, default=90)
    t.add_argument("--finetune-epochs", type=int, default=0, help="decoder-only SW(x, D(z)) epochs at the end")
    t.add_argument("--device", choices=["auto", "cpu", "cuda"])
    t.add_argument("--seed", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--n-projections", type=int)
    t.add_argument("--max-events", type=int, help="use only the first N training events")
    t.add_argument("--checkpoint-every", type=int)
    t.add_argument("--no-mass-feature", action="store_true",
                   help="distances on the four-vector components only (the paper's setup)")
    t.add_argument("--quiet", action="store_true")
    a = t.add_argument_group("emdvae-wjets (β-annealing)")
    a.add_argument("--schedule", choices=["production", "paper"], default="production",
                   help="one rising production pass, or priming + zig-zag + production")
    a.add_argument("--betas", type=int, default=9, help="number of log-spaced β values")
    a.add_argument("--beta-min", type=float, default=10 ** -2.4)
    a.add_argument("--beta-max", type=float, default=1.0)
    a.add_argument("--max-epochs", type=int, help="epochs per β step at most")
    a.add_argument("--steps-per-epoch", type=int, help="batches per epoch (default: one pass)")
    a.add_argument("--lr", type=float)
    a.add_argument("--latent", type=int, default=32)
    a.add_argument("--width", type=int, default=128)
    a.add_argument("--emd-backend", choices=["auto", "exact", "sinkhorn"])
    a.add_argument("--threads", type=int, help="torch CPU threads per run")
    a.add_argument("--workers", type=int, default=2, help="LocalCluster workers for several runs")
    a.add_argument("--scheduler", help="address of an existing Dask scheduler")
    t.set_defaults(func=_cmd_train)

    ev = sub.add_parser("evaluate", help="fidelity metrics of a trained run on its test sample")
    ev.add_argument("rundir")
    ev.add_argument("--test", help="test sample (default: the run's test_data)")
    ev.add_argument("--n-projections", type=int, default=1000)
    ev.add_argument("--json", action="store_true", help="print all numbers as JSON")
    ev.set_defaults(func=_cmd_evaluate)

    dm = sub.add_parser("dimension", help="D1/D2 vs β, KL per dimension and D_corr of an EMD-VAE run")
    dm.add_argument("rundir")
    dm.add_argument("--jets", type=int, default=1000, help="jets for the correlation dimension (pairs ~ n²/2)")
    dm.add_argument("--workers", type=int, default=2, help="threads for the pairwise exact EMDs")
    dm.set_defaults(func=_cmd_dimension)

    i = sub.add_parser("info", help="validate a sample file and summarise it")
    i.add_argument("path")
    i.set_defaults(func=_cmd_info)
    return p


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.func(args)
    except (FileExistsError, FileNotFoundError, ValueError) as exc:
        print(f"otviz: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
