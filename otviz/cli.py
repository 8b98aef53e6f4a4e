"""Command line: ``otviz COMMAND`` (``otviz --help`` lists the commands, ``otviz COMMAND --help``
their options and defaults).

Errors are one line on stderr, ``otviz COMMAND: …`` naming the file, field or flag, with exit
status 2 (``--debug`` shows the traceback); a setting out of range names the flag typed,
``otviz train: --epochs 0: allowed 1 … 5000``, or the file and JSON field it came from,
``otviz train: RUN/config.json: batch_size = 0: allowed 1 … 10000000``; a training run that fails (e.g. a persistent
non-finite loss) prints ``otviz: training failed: …`` and exits with 1; Ctrl-C exits with 130 (128 + SIGINT),
SIGTERM (``kill``, ``timeout``) with 143 (128 + SIGTERM), both recording the run as interrupted.
Output cut off by a closed pipe (``otviz info FILE | head -1``) ends quietly with status 141
(128 + SIGPIPE, as ``cat`` or ``yes`` killed by SIGPIPE report it).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys

from . import __version__

EXIT_ERROR, EXIT_FAILED, EXIT_PIPE, EXIT_INTERRUPTED, EXIT_TERMINATED = 2, 1, 141, 130, 143

# config field → the flag that sets it (for error messages)
FIELD_FLAGS = {
    "epochs": "--epochs", "finetune_epochs": "--finetune-epochs", "batch_size": "--batch-size",
    "n_projections": "--n-projections", "max_events": "--max-events", "checkpoint_every": "--checkpoint-every",
    "paired_fraction": "--paired-fraction", "sw_weight": "--sw-weight",
    "seed": "--seed", "device": "--device", "train_data": "--data", "test_data": "--test", "n_betas": "--betas",
    "n_steps": "--betas", "beta": "--beta-min/--beta-max", "beta_min": "--beta-min", "beta_max": "--beta-max",
    "max_epochs": "--max-epochs", "steps_per_epoch": "--steps-per-epoch", "lr": "--lr", "latent": "--latent",
    "width": "--width", "threads": "--threads", "emd_backend": "--emd-backend",
}


class CommandError(ValueError):
    """An error of ``otviz COMMAND``, printed as ``otviz COMMAND: message`` (exit status 2)."""

    def __init__(self, command: str, message: str):
        super().__init__(message)
        self.command = command


def _typed(argv, flag: str):
    """The text typed after ``flag`` (``--flag V`` or ``--flag=V``) in ``argv``; None if absent."""
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(flag + "="):
            return a[len(flag) + 1:]
    return None


def flag_message(exc, args) -> str:
    """``--flag VALUE: reason`` for a :class:`otviz.errors.ConfigError` of a field set by a flag
    (VALUE as typed; the flag's or the field's value when it was not typed), else its message."""
    flag = FIELD_FLAGS.get(exc.field)
    if flag is None:
        return str(exc)
    if "/" in flag:
        return f"{flag}: {exc.reason}"
    value = _typed(getattr(args, "argv", []), flag)
    if value is None:
        value = getattr(args, flag[2:].replace("-", "_"), None)
    if value is None:
        value = exc.value
    if isinstance(value, (list, tuple)):
        value = " ".join(map(str, value))
    return f"{flag} {value}: {exc.reason}"


def file_message(path, exc) -> str:
    """``FILE: field.path = JSON value: reason`` for a ConfigError read from a JSON config file."""
    if exc.has_value and exc.path:
        return f"{path}: {exc.path} = {json.dumps(exc.value, default=repr)}: {exc.reason}"
    return f"{path}: {exc.reason}"


@contextlib.contextmanager
def config_from_flags(args):
    """Turn a ConfigError raised while building a config from ``args`` into a one-line
    ``otviz COMMAND: --flag VALUE: reason``."""
    from .errors import ConfigError

    try:
        yield
    except ConfigError as exc:
        raise CommandError(args.cmd, flag_message(exc, args)) from exc


@contextlib.contextmanager
def config_from_file(path, command: str, then: str = ""):
    """Turn a ConfigError (or invalid JSON) read from the config file ``path`` into a one-line
    ``otviz COMMAND: FILE: field = value: reason`` (``then`` appended after ``; ``)."""
    from .errors import ConfigError

    tail = f"; {then}" if then else ""
    try:
        yield
    except ConfigError as exc:
        raise CommandError(command, file_message(path, exc) + tail) from exc
    except json.JSONDecodeError as exc:
        raise CommandError(command, f"{path}: not valid JSON: {exc}{tail}") from exc


_KINDS = {"int": "not an integer", "float": "not a number"}


def _argparse_message(message: str) -> str:
    """argparse's ``argument --epochs: invalid int value: 'x'`` as ``--epochs x: not an integer``
    (the flag and the value typed first, as the config errors say it)."""
    import re

    m = re.match(r"argument ([^:]+): (.*)$", message, re.S)
    if not m:
        return message
    flag, rest = m.group(1).split("/")[0], m.group(2)
    if rest.startswith("= "):  # count(): "= VALUE: reason"
        return f"{flag} {rest[2:]}"
    t = re.match(r"invalid (\w+) value: '(.*)'$", rest, re.S)
    if t:
        return f"{flag} {t.group(2)}: {_KINDS.get(t.group(1), 'invalid ' + t.group(1) + ' value')}"
    return f"{flag}: {rest}"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``otviz COMMAND: …``, the prefix of every error of a
    command; ``otviz: error: …`` before a command is known; exit status 2)."""

    def error(self, message):
        sub = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        hint = f" (otviz {sub} --help)" if sub else " (otviz --help)"
        prefix = f"otviz {sub}: " if sub else "otviz: error: "
        self.exit(EXIT_ERROR, f"{prefix}{_argparse_message(message)}{hint}\n")


class _Help(argparse.RawDescriptionHelpFormatter):
    """Help that shows each option's default (unless the help names it or there is none)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (action.default in (None, False, argparse.SUPPRESS) or "default" in text
                or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


def count(text: str) -> int:
    """An integer count; also accepts integral scientific notation (``1e6``)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        v = float(text)
    except ValueError:
        v = None
    if v is None or not v.is_integer():  # "= VALUE: reason" is turned into "--flag VALUE: reason" (_Parser)
        raise argparse.ArgumentTypeError(f"= {text}: not a whole number")
    return int(v)


def _positive(args, name, flag, lo=1, hi=None):
    v = getattr(args, name)
    if v is not None and (v < lo or (hi is not None and v > hi)):
        rng = f"{lo} … {hi}" if hi is not None else f"≥ {lo}"
        raise ValueError(f"{flag} {v}: allowed {rng}")


def _cmd_generate_clusters(args) -> int:
    from pathlib import Path

    from .data.clusters import ClusterModelConfig, generate_clusters
    from .data.clusterset import save_clusters

    _positive(args, "events", "--events")
    _positive(args, "chunk_size", "--chunk-size")
    if not args.scheduler:
        _positive(args, "workers", "--workers", 1, 256)
    cfg = ClusterModelConfig() if args.smearing is None else ClusterModelConfig(smearing=args.smearing)
    cfg.validate()
    out = Path(args.out or f"runs/clusters_seed{args.seed}_n{args.events}.nc")
    if out.exists() and not args.force:
        raise FileExistsError(f"{out}: exists (pass --force to replace it)")
    command = "otviz " + " ".join(shlex.quote(a) for a in args.argv)
    ds = generate_clusters(args.events, seed=args.seed, config=cfg, workers=args.workers,
                           chunk_size=args.chunk_size, progress=not args.quiet, scheduler=args.scheduler,
                           command=command)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_clusters(ds, out, overwrite=args.force)
    a = ds.attrs
    stats = {"path": str(out), "events": a["n_events"], "clusters": a["n_clusters"],
             "clusters_per_event": a["n_clusters"] / a["n_events"], "seconds": a["seconds"],
             "events_per_s": a["events_per_s"], "bytes": out.stat().st_size, "smearing": cfg.smearing}
    print(f"wrote {out}: {stats['events']} events, {stats['clusters']} clusters "
          f"({stats['clusters_per_event']:.2f} per event), smearing {cfg.smearing:g}, in {stats['seconds']:.1f} s "
          f"= {stats['events_per_s']:.0f} events/s, {stats['bytes'] / 1e6:.2f} MB")
    if args.json:
        print(json.dumps(stats))
    return 0


def _cmd_generate(args) -> int:
    from .data.detector import DetectorConfig
    from .data.domains import get_domain
    from .data.generate import generate_to_file

    if args.process == "clusters":
        typed_domain = _typed(getattr(args, "argv", []), "--domain") is not None
        for flag, given in (("--full", args.full), ("--centre", args.centre),
                            ("--domain", typed_domain or args.domain != "sim"), ("--detector", args.detector)):
            if given:
                raise ValueError(f"{flag} applies to the Pythia processes (zee, ttbar, wjets, qcd), not clusters")
        return _cmd_generate_clusters(args)
    if args.smearing is not None:
        raise ValueError("--smearing applies to the clusters process only")
    get_domain(args.domain)  # "--domain 'x': unknown domain; choose one of …" before any work
    _positive(args, "events", "--events")
    _positive(args, "chunk_size", "--chunk-size")
    if not args.scheduler:
        _positive(args, "workers", "--workers", 1, 256)
    if args.detector:
        with open(args.detector) as f:
            cfg = DetectorConfig.from_json(f.read(), source=f"--detector {args.detector}")
    else:
        cfg = DetectorConfig()
    tag = "" if args.domain == "sim" else f"_{args.domain}"
    out = args.out or f"runs/{args.process}{tag}_seed{args.seed}_n{args.events}.nc"
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
        domain=args.domain,
    )
    print(
        f"wrote {stats['path']}: {stats['events']} {args.process} events ({args.domain} domain) "
        f"({stats['generated']} generated, efficiency {stats['events'] / stats['generated']:.3f}) "
        f"in {stats['seconds']:.1f} s = {stats['events_per_s']:.0f} events/s accepted, "
        f"{stats['generated_per_s']:.0f} events/s generated, {stats['bytes'] / 1e6:.2f} MB"
    )
    if args.json:
        print(json.dumps(stats))
    return 0


INFO_WIDTH = 100  # otviz info shortens longer attribute values (seed lists, the detector's JSON) to this
INFO_FULL = ("command",)  # attributes shown in full: what a user copies
_XSEC_UNITS = {"_mb": 1e9, "_ub": 1e6, "_nb": 1e3, "_pb": 1.0, "_fb": 1e-3}  # cross section attribute suffix → pb


def format_attribute(key: str, value) -> str:
    """An attribute's value as ``otviz info`` shows it: floats to 4 significant figures, cross
    sections (``sigma_…_mb``) in pb, ``command`` in full, other long values shortened."""
    import numbers

    import numpy as np

    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, numbers.Integral)):
        for suffix, to_pb in _XSEC_UNITS.items():
            if key.startswith("sigma") and key.endswith(suffix):
                return f"{float(value) * to_pb:.4g} pb"
        return f"{float(value):.4g}"
    text = " ".join(str(value).split())
    if key not in INFO_FULL and len(text) > INFO_WIDTH:
        text = f"{text[:INFO_WIDTH]}… ({len(text)} characters)"
    return text


def _info_path(path_text: str):
    """The file ``otviz info`` reads: one-line errors for a directory and a missing file (with a
    hint where the shipped samples come from)."""
    from .paths import missing_hint, resolve

    path = resolve(path_text)
    if path.is_dir():
        raise CommandError("info", f"{path_text} is a directory; give a sample file (.nc)")
    if not path.exists():
        raise CommandError("info", f"{path_text}: no such file{missing_hint(path_text)}")
    return path


def _describe_clusters(path_text: str, ds) -> None:
    """``otviz info`` of a cluster file (otviz netCDF or Herwig .dat): its summary and attributes."""
    from .data.clusterset import summary
    from .physics.masses import HADRON_NAMES

    s = summary(ds)
    q = s["mass_quantiles_GeV"]
    print(f"{path_text}: cluster file ({ds.attrs.get('source', 'clusters')}) events={s['events']} "
          f"clusters={s['clusters']} (valid)")
    print(f"  clusters per event: {s['clusters_per_event']:.2f}")
    if q:
        print("  cluster mass [GeV]: " + ", ".join(f"{k} {v:.2f}" for k, v in q.items()))
    extra = f", made by fission {s['fission_fraction']:.1%}" if "fission_fraction" in s else ""
    print(f"  with a perturbative constituent: {s['perturbative_fraction']:.1%}{extra}")
    print(f"  four-momentum: max |cluster − hadron₀ − hadron₁| = {s['max_conservation_residual_GeV']:.2g} GeV")
    print("  hadron species: " + ", ".join(f"{HADRON_NAMES.get(p, p)} {c}" for p, c in s["hadron_species"].items()))
    print("  attributes:")
    for k, v in ds.attrs.items():
        print(f"    {k}: {format_attribute(k, v)}")


def _describe_other(path_text: str, raw) -> None:
    """``otviz info`` of a netCDF file that is not a sample (a sweep.nc, metrics.nc, dimension.nc):
    its dimensions, coordinates, variables and attributes."""
    kind = (f"a sweep of {raw.attrs.get('preset', '?')} runs" if "swept" in raw.attrs else raw.attrs.get("kind", ""))
    print(f"{path_text}: netCDF file, not an event sample{f' ({kind})' if kind else ''}")
    print("  dimensions: " + (", ".join(f"{d} ({n})" for d, n in raw.sizes.items()) or "none"))
    if raw.coords:
        print("  coordinates:")
        for name, c in raw.coords.items():
            vals = [str(v) for v in c.values.ravel()[:6].tolist()]
            more = f", … ({c.size})" if c.size > 6 else ""
            print(f"    {name}({', '.join(c.dims)}): {', '.join(vals)}{more}")
    print("  variables:")
    for name, v in raw.data_vars.items():
        unit = f" [{v.attrs['units']}]" if v.attrs.get("units") else ""
        desc = v.attrs.get("long_name") or v.attrs.get("description") or ""
        print(f"    {name}({', '.join(v.dims)}) {v.dtype}{unit}{': ' + str(desc) if desc else ''}")
    if raw.attrs:
        print("  attributes:")
        for k, v in raw.attrs.items():
            print(f"    {k}: {format_attribute(k, v)}")


def _cmd_info(args) -> int:
    from .data.io import describe_variables, is_sample, load, open_raw
    from .physics import fourvec as fv

    path = _info_path(args.path)
    if path.suffix.lower() in (".dat", ".txt"):  # a Herwig cluster file
        from .data.clusterset import load_clusters

        _describe_clusters(args.path, load_clusters(path))
        return 0
    raw = open_raw(path)
    if raw.attrs.get("kind") == "clusters":
        from .data.clusterset import check_cluster_dataset

        _describe_clusters(args.path, check_cluster_dataset(raw, args.path))
        return 0
    if not is_sample(raw):
        _describe_other(args.path, raw)
        return 0
    ds = load(path)
    print(f"{args.path}: process={ds.attrs['process']} events={ds.sizes['event']} (valid)")
    for v in describe_variables(ds):
        unit = f" [{v['units']}]" if v["units"] else ""
        parts = f" ({', '.join(v['particles'])})" if v["particles"] else ""
        print(f"  {v['name']}({', '.join(v['dims'])}) = {v['shape']} {v['dtype']}{unit}: {v['contents']}{parts}")
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
    print("  attributes:")
    for k, v in ds.attrs.items():  # the generator's record: settings, seeds, detector, versions, command
        print(f"    {k}: {format_attribute(k, v)}")
    return 0


def _refuse_foreign_flags(args):
    """Flags of another kind of model (``Kind.cli_options``) are an error, not silently ignored."""
    from . import kinds

    own = kinds.for_preset(args.model)
    other = [n for k in kinds.kinds() if k is not own for n in k.cli_options if n not in own.cli_options]
    given = [n for n in dict.fromkeys(other) if getattr(args, n, None) not in (None, False)]
    if given:
        flags = ", ".join("--" + n.replace("_", "-") for n in given)
        raise ValueError(f"{flags}: not an option of otviz train {args.model}")


# flags that are not settings of the run (the runtime fields, e.g. --device, are added where used)
_NOT_SETTINGS = ("--out", "--resume", "--quiet", "--debug", "--data-dir", "--workers", "--scheduler")


def _open_run(run_cls, out, cfg, args, stored_cls):
    """Open ``out`` for training ``cfg``: ``--restart`` replaces a stored run, ``--resume``
    continues it with its stored settings (runtime flags such as --device still apply), neither:
    the same settings resume, other settings are refused (RunExistsError naming the fields)."""
    import dataclasses

    from .errors import ConfigError
    from .train.trainer import RUNTIME_FIELDS, config_differences, format_differences

    cfg_path = out / "config.json"
    if args.restart:
        return run_cls(out, cfg, restart=True)
    if args.resume:
        if not cfg_path.exists():
            raise FileNotFoundError(f"{out}: no run to resume (no config.json)")
        with config_from_file(cfg_path, "train", then="cannot resume this run"):
            try:
                stored = stored_cls.from_json(cfg_path.read_text())
            except (ConfigError, json.JSONDecodeError):
                raise
            except ValueError as exc:
                raise ValueError(f"{cfg_path}: cannot resume this run here: {exc}") from exc
        diff = config_differences(stored, cfg)
        ignored = [f for f in dict.fromkeys(t.split("=", 1)[0] for t in getattr(args, "argv", []) if t.startswith("--"))
                   if f not in _NOT_SETTINGS and f[2:].replace("-", "_") not in RUNTIME_FIELDS]
        if diff and ignored:  # settings were typed: say which stored ones win (nothing typed: nothing to say)
            print(f"{out}: resuming with the stored settings, not this command's ({format_differences(diff)})",
                  file=sys.stderr)
        runtime = {k: getattr(cfg, k) for k in RUNTIME_FIELDS if hasattr(cfg, k)}
        return run_cls(out, dataclasses.replace(stored, **runtime))
    return run_cls(out, cfg)


def _cmd_train(args) -> int:
    if args.restart and args.resume:
        raise ValueError("--restart and --resume exclude each other")
    _refuse_foreign_flags(args)
    from . import kinds

    with config_from_flags(args):  # a setting out of range names its flag (a config.json's: see _open_run)
        return kinds.resolve(kinds.for_preset(args.model).train_command)(args)


def schedule_line(cfg) -> str:
    """The training schedule in words: ``1 epoch + 20 decoder fine-tune epochs (…)`` for OTUS; a
    config with its own ``schedule_text()`` (Turbo-Sim) says it itself."""
    if hasattr(cfg, "schedule_text"):
        return cfg.schedule_text()
    fine = sum(s.epochs for s in cfg.stages if getattr(s, "train", "") == "decoder")
    main = cfg.total_epochs - fine

    def n(k, what):
        return f"{k} {what}{'s' if k != 1 else ''}"

    pairs = (f"; paired fraction {cfg.paired_fraction:g} (weight {cfg.paired_weight:g}, OTUS Eq. 20–21)"
             if getattr(cfg, "paired_fraction", 0) else "")
    if not fine:
        return f"schedule: {n(main, 'epoch')}, no decoder fine-tune{pairs}"
    return (f"schedule: {n(main, 'epoch')} + {n(fine, 'decoder fine-tune epoch')} = {cfg.total_epochs} "
            f"(--finetune-epochs 0 for none){pairs}")


def _train_epochs(run, out, args, postfix_keys, rate_label: str = "ev/s") -> str:
    """Train an opened epoch-based ``run`` in this process behind an epoch bar whose postfix shows
    ``postfix_keys`` of each epoch event (those present) and its ``events_per_s`` as ``rate_label``;
    resumes and NaN roll-backs are written out. Returns the status."""
    from tqdm.auto import tqdm

    bar = tqdm(total=run.config.total_epochs, unit="epoch", desc=f"otviz train {run.config.model}",
               disable=args.quiet, file=sys.stderr)

    def progress(ev):
        if ev["type"] == "resumed":
            bar.write(f"  from epoch {ev['epoch']}, its last checkpoint", file=sys.stdout)
            bar.update(ev["epoch"])
        elif ev["type"] == "epoch":
            bar.update(1)
            bar.set_postfix({k: f"{ev[k]:.4g}" for k in postfix_keys if k in ev}
                            | {rate_label: f"{ev['events_per_s']:.0f}"})
        elif ev["type"] == "nan_rollback" and not args.quiet:
            bar.write(f"non-finite loss: rolled back to epoch {ev['epoch']}, lr × {ev['lr_scale']}", file=sys.stderr)

    try:
        return run.run_blocking(progress)
    finally:
        bar.close()


def _print_start(run, out) -> None:
    """The schedule line, and "resuming" when the run continues from a checkpoint."""
    print(schedule_line(run.config))
    if not run.fresh and (out / "checkpoint.pt").exists():
        print(f"resuming the run in {out}", flush=True)  # at once: a run killed while loading still said so


def _cmd_train_otus(args) -> int:
    """``otviz train otus-zee|otus-ttbar``: one OTUS run in this process."""
    if len(args.out) != 1 or (args.data and len(args.data) != 1):
        raise ValueError(f"{args.model} trains one run: give one --out and at most one --data")
    from pathlib import Path

    from . import kinds

    kind = kinds.for_preset(args.model)

    out = Path(args.out[0])
    overrides = {k: v for k, v in {
        "train_data": args.data[0] if args.data else None, "test_data": args.test, "device": args.device,
        "seed": args.seed, "batch_size": args.batch_size, "n_projections": args.n_projections,
        "max_events": args.max_events, "checkpoint_every": args.checkpoint_every,
        "mass_feature": False if args.no_mass_feature else None, "paired_fraction": args.paired_fraction,
        "sw_weight": args.sw_weight,
    }.items() if v is not None}
    if args.test:
        from .paths import resolve

        if not resolve(args.test).exists():
            raise FileNotFoundError(f"{args.test} (--test): no such file")
    schedule = {k: v for k, v in (("epochs", args.epochs), ("finetune_epochs", args.finetune_epochs)) if v is not None}
    cfg = kind.preset(args.model)(**schedule, **overrides)  # the preset's defaults for what is not given
    run = _open_run(kind.run_class(), out, cfg, args, kind.config_class())
    if run.finished:
        print(f"{out}: already finished ({len(json.loads((out / 'history.json').read_text() or '[]'))} epochs); "
              "nothing to do (--restart trains it again, replacing it)")
        return 0
    _print_start(run, out)
    n_events = run.config.max_events
    if n_events is not None and n_events < run.config.batch_size:
        print(f"otviz train: warning: --max-events {n_events} is below the batch size {run.config.batch_size}: "
              f"each epoch is one batch of {n_events} events", file=sys.stderr)
    status = _train_epochs(run, out, args, ("loss", "mse", "sw_z", "sw_x", "p_accept", "w_x_tilde", "w_z_tilde"))
    secs = sum(h["seconds"] for h in run.history)
    print(f"{status}: {len(run.history)} epochs in {secs:.0f} s of training; run directory {out}")
    return 0 if status == "done" else EXIT_FAILED


def _cmd_train_tagger(args) -> int:
    """``otviz train tagger-wjets``: one jet-tagger run in this process (``--data SIGNAL BACKGROUND``)."""
    if len(args.out) != 1 or (args.data and len(args.data) != 2):
        raise ValueError(f"{args.model} trains one run: give one --out and --data SIGNAL BACKGROUND (or neither)")
    from pathlib import Path

    from . import kinds

    kind = kinds.for_preset(args.model)
    out = Path(args.out[0])
    overrides = {k: v for k, v in {
        "signal": args.data[0] if args.data else None, "background": args.data[1] if args.data else None,
        "device": args.device, "seed": args.seed, "batch_size": args.batch_size, "max_events": args.max_events,
        "checkpoint_every": args.checkpoint_every, "lr": args.lr,
    }.items() if v is not None}
    cfg = kind.preset(args.model)(**({"epochs": args.epochs} if args.epochs is not None else {}), **overrides)
    run = _open_run(kind.run_class(), out, cfg, args, kind.config_class())
    if run.finished:
        print(f"{out}: already finished; nothing to do (--restart trains it again, replacing it)")
        return 0
    _print_start(run, out)
    status = _train_epochs(run, out, args, ("loss", "val_loss", "val_auc"), 'jets/s')
    secs = sum(h["seconds"] for h in run.history)
    test = (f"; test AUC {run.evaluation['test_auc']:.4f} (loss {run.evaluation['test_loss']:.4f})"
            if run.evaluation else "")
    print(f"{status}: {len(run.history)} epochs in {secs:.0f} s of training{test}; run directory {out}")
    return 0 if status == "done" else EXIT_FAILED


def _cmd_train_hadml(args) -> int:
    """``otviz train hadml|hadml-v2``: one HadML run in this process (``--data FILE``: a cluster .nc or
    Herwig .dat; v2 also ``--target FILE`` and ``--init-from RUN``)."""
    if len(args.out) != 1 or (args.data and len(args.data) != 1):
        raise ValueError(f"{args.model} trains one run: give one --out and at most one --data")
    from pathlib import Path

    from . import kinds

    kind = kinds.for_preset(args.model)
    out = Path(args.out[0])
    overrides = {k: v for k, v in {
        "data": args.data[0] if args.data else None, "target": args.target, "init_from": args.init_from,
        "device": args.device, "seed": args.seed, "batch_size": args.batch_size, "max_events": args.max_events,
        "checkpoint_every": args.checkpoint_every,
    }.items() if v is not None}
    if args.target is not None or args.init_from is not None:
        overrides.setdefault("mode", "v2")
        if kind.preset(args.model)().mode == "v1" and (args.target is None or args.init_from is None):
            given, missing = (("--target", "--init-from RUN (the v1 run v2 starts from)") if args.init_from is None
                              else ("--init-from", "--target FILE (the cluster file whose events are the data)"))
            raise ValueError(f"{given} trains v2, which also needs {missing}")
    cfg = kind.preset(args.model)(**({"epochs": args.epochs} if args.epochs is not None else {}), **overrides)
    run = _open_run(kind.run_class(), out, cfg, args, kind.config_class())
    if run.finished:
        print(f"{out}: already finished; nothing to do (--restart trains it again, replacing it)")
        return 0
    _print_start(run, out)
    status = _train_epochs(run, out, args, ("d_loss", "g_loss", "val_w1_cos_theta", "val_w1_phi"), 'clusters/s')
    secs = sum(h["seconds"] for h in run.history)
    goal = run.evaluation.get("goal") if run.evaluation else None
    if goal:
        from .metrics.hadronisation import format_goal_row
        from .train.hadml import CLOSURE_KEY, closure_line

        ref = (f"the target's (\"data\", {run.config.target}) test split" if run.config.mode == "v2"
               else f"{run.config.data}'s test split")
        print(f"test W1 per cluster-mass bin against {ref} (value / truth-vs-truth floor; goal ≤ 2):")
        for r in goal:
            print(f"  {format_goal_row(r)}")
        if CLOSURE_KEY in run.evaluation:
            print(closure_line(run.evaluation[CLOSURE_KEY]))
    n = len(run.history)
    print(f"{status}: {n} epoch{'s' * (n != 1)} in {secs:.0f} s of training; run directory {out}")
    return 0 if status == "done" else EXIT_FAILED


def _cmd_train_otcal(args) -> int:
    """``otviz train otcal-wjets``: fit the per-class ICNN OT maps on a latents file (``--data LATENTS``,
    ``--tagger RUN``), then evaluate (metrics.nc, points.nc)."""
    if len(args.out) != 1 or (args.data and len(args.data) != 1):
        raise ValueError(f"{args.model} trains one run: give one --out and at most one --data LATENTS")
    from pathlib import Path

    from tqdm.auto import tqdm

    from . import kinds

    kind = kinds.for_preset(args.model)
    out = Path(args.out[0])
    overrides = {k: v for k, v in {
        "latents": args.data[0] if args.data else None, "tagger": args.tagger, "device": args.device,
        "seed": args.seed, "max_jets": args.max_events,
    }.items() if v is not None}
    map_over = {k: v for k, v in {"steps": args.steps, "batch": args.batch_size, "lr": args.lr,
                                  "checkpoint_every": args.checkpoint_every}.items() if v is not None}
    cfg = kind.preset(args.model)(**overrides, **({"map_config": map_over} if map_over else {}))
    run = _open_run(kind.run_class(), out, cfg, args, kind.config_class())
    if run.finished:
        print(f"{out}: already finished; nothing to do (--restart fits it again, replacing it)")
        return 0
    print(schedule_line(run.config))
    bar = tqdm(total=run.config.total_epochs, unit="step", desc=f"otviz train {run.config.model}",
               disable=args.quiet, file=sys.stderr)

    def progress(ev):
        if ev["type"] == "epoch":
            bar.n = ev["epoch"]
            bar.set_postfix({"class": ev["class"], "cost": f"{ev['cost']:.4g}", "W2 (dual)": f"{ev.get('w2_dual', float('nan')):.4g}"})
            bar.refresh()
        elif ev["type"] == "evaluating":
            bar.write("fitted; evaluating (discriminators, working points)", file=sys.stdout)
        elif ev["type"] == "nan_rollback" and not args.quiet:
            bar.write(f"non-finite loss: rolled back, lr × {ev['lr_scale']}", file=sys.stderr)

    try:
        status = run.run_blocking(progress)
    finally:
        bar.close()
    if status == "done" and run.metrics is not None:
        print(format_calibration_metrics(run.metrics))
    print(f"{status}; run directory {out}")
    return 0 if status == "done" else EXIT_FAILED


def calibration_report(rundir) -> tuple[str, dict]:
    """(text, JSON summary) of a finished calibration run's stored ``metrics.nc`` (``otviz evaluate``;
    read, never rewritten)."""
    from pathlib import Path

    import xarray as xr

    from .train.calibration import METRICS_FILE, summary

    path = Path(rundir) / METRICS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; the calibration has not finished (otviz train otcal-wjets "
                                f"--out {rundir} resumes it)")
    with xr.open_dataset(path, engine="h5netcdf") as m:
        m = m.load()
    return format_calibration_metrics(m), summary(m)


def format_calibration_metrics(m) -> str:
    """The AUC table and the working point of a calibration's metrics.nc, as text."""
    from .metrics.calibration import (COMPARISON_DESCRIPTIONS, COMPARISON_HEADS, SPACE_DESCRIPTIONS,
                                      displayed_comparisons, unclosed)

    comps = displayed_comparisons(m)
    heads = [COMPARISON_HEADS.get(c, c) for c in comps]
    widths = [max(15, len(h)) for h in heads]
    lines = ["discriminator ROC AUC ± its standard error (0.5: indistinguishable; data vs data: the floor)",
             f"{'class':<6} {'space':<7} | " + " | ".join(h.rjust(w) for h, w in zip(heads, widths))]
    for lab in m.label.values:
        for sp in m.space.values:
            cells = []
            for c, w in zip(comps, widths):
                a = float(m["auc"].sel(label=lab, space=sp, comparison=c))
                e = float(m["auc_error"].sel(label=lab, space=sp, comparison=c)) if "auc_error" in m else float("nan")
                cells.append(f"{a:.3f} ± {e:.3f}".rjust(w))
            lines.append(f"{lab:<6} {sp:<7} | " + " | ".join(cells))
    lines += [f"  {COMPARISON_HEADS.get(c, c)}: {COMPARISON_DESCRIPTIONS[c]}" for c in comps if c in COMPARISON_DESCRIPTIONS]
    lines += [f"  {sp}: {SPACE_DESCRIPTIONS[str(sp)]}" for sp in m.space.values if str(sp) in SPACE_DESCRIPTIONS]
    gaps = unclosed(m)
    if gaps:
        lines.append("  not closed = calibrated vs data, new D, more than 5 standard errors above the floor:")
    lines += [f"  not closed: {lab} {sp} calibrated vs data {a:.3f}, floor {f:.3f}" for lab, sp, a, f in gaps]
    lines.append(f"signal efficiency at {m.attrs['mistag']:g} mistag rate (each domain's own cut): " + ", ".join(
        f"{d} {float(m['efficiency'].sel(domain=d)):.4f} ± {float(m['efficiency_error'].sel(domain=d)):.4f}"
        for d in m.domain.values))
    if "efficiency_at_data_cut" in m:
        cut = float(m["cut"].sel(domain="data"))
        lines.append(f"at the data's cut ({cut:.3g}): signal efficiency " + ", ".join(
            f"{d} {float(m['efficiency_at_data_cut'].sel(domain=d)):.4f} ± "
            f"{float(m['efficiency_at_data_cut_error'].sel(domain=d)):.4f}" for d in m.domain.values)
            + "; mistag rate " + ", ".join(
            f"{d} {float(m['mistag_at_data_cut'].sel(domain=d)):.4f} ± "
            f"{float(m['mistag_at_data_cut_error'].sel(domain=d)):.4f}" for d in m.domain.values))
    lines.append("transport cost E|T(z) - z|^2 (z128 units^2): " + ", ".join(
        f"{lab} {float(m['transport_cost'].sel(label=lab)):.3g}" for lab in m.label.values))
    return "\n".join(lines)


def _anneal_config(args, data):
    import xarray as xr

    from .models.emdvae import EMDVAEConfig
    from .paths import resolve
    from .train.annealing import emdvae_wjets_config
    from .train.trainer import check_sample

    check_sample(resolve(data), "jets", "--data")
    with xr.open_dataset(resolve(data), engine="h5netcdf") as ds:
        centred = bool(int(ds.attrs.get("centred", 0)))
    overrides = {k: v for k, v in {
        "device": args.device, "seed": args.seed, "batch_size": args.batch_size, "max_events": args.max_events,
        "max_epochs": args.max_epochs, "steps_per_epoch": args.steps_per_epoch, "lr": args.lr,
        "emd_backend": args.emd_backend, "threads": args.threads,
    }.items() if v is not None}
    kw = {k: v for k, v in {"n_betas": args.betas, "beta_min": args.beta_min, "beta_max": args.beta_max}.items()
          if v is not None}
    cfg = emdvae_wjets_config(centred, schedule=args.schedule or "primed", **kw, **overrides)
    cfg.train_data = data
    cfg.model_config = EMDVAEConfig(latent=32 if args.latent is None else args.latent,
                                    width=128 if args.width is None else args.width)
    return cfg.validate()


def _cmd_anneal(args) -> int:
    """``otviz train emdvae-wjets``: one β-annealing run in this process, or several as Dask jobs.
    Every run directory is opened (validated, checked against its stored settings, config.json
    written) here before any training starts."""
    from pathlib import Path

    from .train.annealing import AnnealConfig, AnnealingRun

    outs = [Path(o) for o in args.out]
    datas = args.data or ["data/wjets_centred.nc"]
    if len(datas) == 1 and len(outs) > 1:
        datas = datas * len(outs)
    if len(datas) != len(outs):
        raise ValueError(f"give one --data per --out ({len(datas)} data files for {len(outs)} run directories)")
    if len(set(o.resolve() for o in outs)) != len(outs):
        raise ValueError("--out: each run needs its own directory")
    workers = 2 if args.workers is None else args.workers
    if not args.scheduler and not 1 <= workers <= 256:
        raise ValueError(f"--workers {workers}: allowed 1 … 256")
    cfgs = [_anneal_config(args, d) for d in datas]  # validate everything before touching any directory
    runs = [_open_run(AnnealingRun, o, c, args, AnnealConfig) for o, c in zip(outs, cfgs)]
    for o, r in zip(outs, runs):
        if r.finished:
            n = len(json.loads((o / "steps.json").read_text() or "[]")) if (o / "steps.json").exists() else 0
            print(f"{o}: already finished ({n} β steps); nothing to do (--restart trains it again, replacing it)")
    todo = [(o, r) for o, r in zip(outs, runs) if not r.finished]
    if not todo:
        return 0
    if len(runs) > 1 or args.scheduler:
        from .train.jobs import run_annealing_jobs

        for o, r in todo:
            print(f"{o}: {'new run on ' + r.config.train_data if r.fresh else 'resuming'}")
        results = run_annealing_jobs([(o, None) for o, _ in todo], workers=workers, scheduler=args.scheduler)
        for r in results:
            print(f"{r['rundir']}: {r['status']} after {r['steps']} β steps {r['message']}")
        return 0 if all(r["status"] == "done" for r in results) else EXIT_FAILED
    out, run = todo[0]

    from tqdm.auto import tqdm

    # one bar over the β steps (an early stop ends a step before max_epochs); a line per finished step
    bar = tqdm(total=None, unit="β step", desc=f"otviz train {args.model}", disable=args.quiet, file=sys.stderr)

    def say(line):
        if not args.quiet:
            bar.write(line, file=sys.stderr)

    def progress(ev):
        if "total_steps" in ev and bar.total != ev["total_steps"]:
            bar.total = ev["total_steps"]
            bar.refresh()
        if ev["type"] == "epoch":
            bar.set_postfix_str(f"β {ev['beta']:.3g} ({ev['pass_name']}) epoch {ev['epoch'] + 1}: val loss "
                                f"{ev['val_loss']:.4g}, R {ev['val_rate']:.3f}, D {ev['val_distortion']:.3g}, "
                                f"{ev['jets_per_s']:.0f} jets/s")
        elif ev["type"] == "beta_step":
            bar.update(1)
            say(f"β step {ev['beta_step'] + 1}/{ev['total_steps']} ({ev['pass_name']}, β = {ev['beta']:.3g}): "
                f"{ev['epochs']} epochs ({ev['stopped']}), R {ev['rate']:.3f}, D {ev['distortion']:.3g}")
        elif ev["type"] == "resumed":
            bar.update(ev["beta_step"] - bar.n)
            bar.write(f"resuming the run in {out} from β step {ev['beta_step'] + 1}, epoch {ev['epoch']} (checkpoint)",
                      file=sys.stdout)
        elif ev["type"] == "nan_rollback":
            say(f"non-finite loss: rolled back to β step {ev['beta_step'] + 1}, epoch {ev['epoch']}, "
                f"lr × {ev['lr_scale']}")

    try:
        status = run.run_blocking(progress)
    finally:
        bar.close()
    secs = sum(h["seconds"] for h in run.history)
    print(f"{status}: {len(run.steps_done)} β steps, {len(run.history)} epochs in {secs:.0f} s of training; "
          f"run directory {out}")
    return 0 if status == "done" else EXIT_FAILED


def _require_run(rundir, command: str):
    """A one-line error unless ``rundir`` is a run directory of a kind ``otviz COMMAND`` takes
    (``Kind.commands`` in :mod:`otviz.kinds`)."""
    from pathlib import Path

    from . import kinds
    from .train.run import read_config, run_kind

    from .errors import ConfigError

    path = Path(rundir)
    if not path.is_dir():
        raise FileNotFoundError(f"{rundir}: no such run directory")
    try:
        read_config(path)  # names config.json when it is missing or invalid
    except ValueError as exc:
        if isinstance(exc.__cause__, ConfigError):  # name the file and the JSON field
            raise CommandError(command, file_message(path / "config.json", exc.__cause__)) from exc
        if isinstance(exc.__cause__, json.JSONDecodeError):  # as otviz train says it
            raise CommandError(command, f"{path / 'config.json'}: not valid JSON: {exc.__cause__}") from exc
        raise
    have = kinds.get(run_kind(path))
    takes = kinds.for_command(command)
    if have not in takes:
        use = f" (use otviz {' or otviz '.join(have.commands)})" if have.commands else ""
        raise ValueError(f"{rundir}: {have.description}; otviz {command} takes "
                         f"{_either(k.description for k in takes)}{use}")


def _either(items) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    items = list(items)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def _cmd_runs(args) -> int:
    from .paths import home
    from .train.catalog import format_table, list_runs

    if getattr(args, "data_dir", None) and not home().is_dir():
        raise CommandError("runs", f"--data-dir {args.data_dir}: no such directory")
    rows = list_runs()
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=1))
    else:
        print(format_table(rows))
    return 0


def _run_names(rundirs) -> list[str]:
    """Column names of several runs: each directory's name, or its path where two names coincide."""
    from pathlib import Path

    names = [Path(d).name or str(d) for d in rundirs]
    return [n if names.count(n) == 1 else str(d) for n, d in zip(names, rundirs)]


def format_ks_tables(tables: dict) -> str:
    """The Turbo-Sim KS table of one or several tt̄ runs ({column name: ks_table Dataset}), KS ×10⁻²:
    per run its value (``*`` where it misses its goal) and value/floor, then the floor and goal
    (one column when every run has the same floor, i.e. the same test sample and seed, else one per
    run) and the published OTUS and Turbo-Sim rows."""
    import numpy as np

    names = list(tables)
    first = tables[names[0]]
    same = all(np.array_equal(t.ks_floor.values, first.ks_floor.values)
               and np.array_equal(t.goal.values, first.goal.values) for t in tables.values())
    models = [str(m) for m in first.model.values]
    w = max(9, *(len(n) + 2 for n in names))
    head = f"{'':22s}{'observable':12s}"
    for n in names:
        head += f"{n:>{w}s}{'/floor':>7s}" + ("" if same else f"{'floor':>8s}{'goal':>8s}")
    head += (f"{'floor':>8s}{'goal':>8s}" if same else "") + "".join(f"{m + ' pub.':>15s}" for m in models)
    events = ", ".join(f"{n}: {t.attrs.get('n_test', '?')}" for n, t in tables.items())
    lines = [f"KS ×10⁻² (test events {events}; truth half vs model half, {first.attrs.get('n_splits', '?')} "
             f"random splits); published rows on their data", head]
    space = None
    for obs in first.observable.values:
        r0 = first.sel(observable=obs)
        s = str(r0.space.values)
        line = f"{s if s != space else '':22s}{str(r0.symbol.values):12s}"
        for n in names:
            r = tables[n].sel(observable=obs)
            mark = "*" if float(r.ks) > float(r.goal) else " "
            line += f"{100 * float(r.ks):{w - 1}.2f}{mark}{float(r.ks_ratio):7.2f}"
            if not same:
                line += f"{100 * float(r.ks_floor):8.2f}{100 * float(r.goal):8.2f}"
        if same:
            line += f"{100 * float(r0.ks_floor):8.2f}{100 * float(r0.goal):8.2f}"
        lines.append(line + "".join(f"{100 * float(r0.published.sel(model=m)):15.2f}" for m in models))
        space = s
    from .metrics.ks_table import DEFAULT_GOAL_RULE

    rules = {n: t.attrs.get("goal", DEFAULT_GOAL_RULE) for n, t in tables.items()}
    if len(set(rules.values())) == 1:
        lines.append(f"* misses its goal: {next(iter(rules.values()))}")
    else:  # each run is held to its own model's published row
        lines.append("* misses its goal, each run its own model's:")
        lines += [f"    {n}: {rule}" for n, rule in rules.items()]
    lines.append("Z space: z̃ = E(x) vs z; X space and masses: x̃′ = D(z) vs x; the last columns are the published "
                 "values (their 422,761 events)")
    return "\n".join(lines)


def _cmd_evaluate(args) -> int:
    from .train.products import evaluate_run, read_ks_table, sample_has_ttbar_layout
    from .train.run import read_config

    _positive(args, "n_projections", "--n-projections", 1, 10_000)
    from . import kinds
    from .train.run import run_kind

    for d in args.rundir:
        _require_run(d, "evaluate")
        given = [f for f, v in (("--test", args.test), ("--n-projections", args.n_projections)) if v is not None]
        if kinds.get(run_kind(d)).report and given:
            raise CommandError("evaluate", f"{d}: {kinds.get(run_kind(d)).description}, evaluated when its training "
                                           f"ended; {' and '.join(given)} {'does' if len(given) == 1 else 'do'} not apply to it")
    if args.table:  # every run must be tt̄ before any is evaluated
        for d in args.rundir:
            test = args.test or getattr(read_config(d), "test_data", None)
            if not test or not sample_has_ttbar_layout(test):
                raise CommandError("evaluate", f"{d}: not a tt̄ run (its test sample {test or '(none)'} is not "
                                               f"z = e⁻ ν̄ b b̄ u d̄, x = e⁻ MET jet1…jet4); --table needs tt̄ runs")
    from pathlib import Path

    from .paths import pretrained_dir
    from .train.products import KS_TABLE_FILE, METRICS_FILE, SUMMARY_FILE

    def stored_shipped(d) -> bool:
        """A shipped run (under the home's data/pretrained) whose stored results answer the command:
        read them, never rewrite the shipped files."""
        p = Path(d).resolve()
        shipped = pretrained_dir().resolve() in p.parents
        need = [METRICS_FILE, SUMMARY_FILE] + ([KS_TABLE_FILE] if args.table else [])
        return shipped and args.test is None and all((p / f).exists() for f in need)

    summaries, tables, wrote, texts = {}, {}, [], {}
    for d, name in zip(args.rundir, _run_names(args.rundir)):
        report = kinds.get(run_kind(d)).report
        if report:  # evaluated when its training ended: print what it stored
            texts[d], summaries[d] = kinds.resolve(report)(d)
        elif stored_shipped(d):
            summaries[d] = json.loads((Path(d) / SUMMARY_FILE).read_text())
            print(f"{d}: a shipped run; its stored results (not recomputed, not rewritten)",
                  file=sys.stderr if args.json else sys.stdout)
        else:
            ds, summaries[d] = evaluate_run(d, test_path=args.test, n_projections=args.n_projections or 1000,
                                            progress=not args.quiet)
            wrote.append(d)
        if args.table:
            tables[name] = read_ks_table(d)
    if args.table and args.json:
        print(json.dumps({n: {str(o): {k: float(t[k].sel(observable=o)) for k in ("ks", "ks_floor", "ks_ratio", "goal")}
                              for o in t.observable.values} for n, t in tables.items()}, indent=1))
    elif args.table:
        print(format_ks_tables(tables))
    elif args.json:
        print(json.dumps(summaries[args.rundir[0]] if len(args.rundir) == 1 else summaries, indent=1))
    else:
        from .metrics.evaluate import format_summary

        for d, summary in summaries.items():
            if len(summaries) > 1:
                print(f"== {d}")
            print(texts[d] if d in texts else format_summary(summary))
    for d in wrote:  # (after --json on stderr, so that stdout stays JSON)
        extra = f", {KS_TABLE_FILE}" if (Path(d) / KS_TABLE_FILE).exists() else ""
        print(f"wrote {Path(d) / METRICS_FILE}, {SUMMARY_FILE}{extra}", file=sys.stderr if args.json else sys.stdout)
    return 0


def _cmd_latents(args) -> int:
    """``otviz latents TAGGER_RUN FILE … --out LATENTS``: the tagger's z₁₂₈ of every jet of the files."""
    from .models.tagger import PFNTagger
    from .train.run import load_run
    from .train.tagger import write_latents

    run = load_run(args.rundir)
    if not isinstance(run.model, PFNTagger):
        raise ValueError(f"{args.rundir}: not a tagger run (otviz train tagger-wjets makes one)")
    if args.labels is not None and len(args.labels) != len(args.files):
        raise ValueError(f"--labels: {len(args.labels)} labels for {len(args.files)} files")
    ds = write_latents(run, args.files, args.out, labels=args.labels, max_events=args.max_events)
    counts = {}
    for dom, lab in zip(ds["domain"].values, ds["label"].values):
        counts[(str(dom), int(lab))] = counts.get((str(dom), int(lab)), 0) + 1
    print(f"{args.out}: z128 of {ds.sizes['jet']} jets (" + ", ".join(
        f"{dom} label {lab}: {n}" for (dom, lab), n in sorted(counts.items())) + ")")
    return 0


def _cmd_dimension(args) -> int:
    import time

    from .train.run import load_run

    _positive(args, "jets", "--jets", 2, 100_000)
    if args.workers is not None:
        raise CommandError("dimension", "--workers: no such option any more: the pairwise exact EMDs run in one "
                                        "thread (POT's solver holds the GIL, so threads made them slower)")
    _require_run(args.rundir, "dimension")
    run = load_run(args.rundir)
    if not run.steps:
        raise ValueError(f"{args.rundir}: no finished β step yet (steps.json is empty)")
    stored = run.dimensionality
    if stored is not None and not args.force and int(stored.attrs.get("n_jets_corr", args.jets)) != args.jets:
        raise ValueError(f"{args.rundir}/dimension.nc holds D_corr from {int(stored.attrs['n_jets_corr'])} jets; "
                         f"--jets {args.jets} would replace it: add --force (or copy the run first)")
    t0 = time.perf_counter()
    ds = run.dimension(n_jets=args.jets, progress=not args.quiet)
    ht = ds.attrs["ht_mean_GeV"]
    print(f"{args.rundir}/dimension.nc ({time.perf_counter() - t0:.1f} s; mean H_T {ht:.0f} GeV)")
    def num(v):  # two decimals, and no "-0.00"
        return f"{v + 0.0:6.2f}".replace("-0.00", " 0.00")

    print("  β_mid     β·⟨H_T⟩ [GeV]   D1      D2")
    for b, d1, d2 in zip(ds.beta_mid.values, ds.D1.values, ds.D2.values):
        print(f"  {b:8.4g}  {b * ht:9.1f}   {num(d1)}  {num(d2)}")
    print("  β         β·⟨H_T⟩ [GeV]   R       D=<EMD²>   active dims (KL > 0.1)")
    for i, b in enumerate(ds.beta.values):
        kl = ds.kl_per_dim.values[i]
        print(f"  {b:8.4g}  {b * ht:9.1f}   {num(ds.rate.values[i])}  {ds.distortion.values[i]:9.3g}  {int((kl > 0.1).sum())}")
    print(f"  data's correlation dimension ({int(ds.attrs.get('n_jets_corr', 0))} jets), drawn at β = Q/2")
    print("  β         β·⟨H_T⟩ [GeV]   D_corr")
    for b, d in zip(ds.beta_of_q.values, ds.D_corr.values):
        print(f"  {b:8.4g}  {b * ht:9.1f}   {num(d)}")
    return 0


def _cmd_sweep(args) -> int:
    """``otviz sweep PRESET --set FIELD=V1,V2 …``: a grid of runs as Dask tasks, then sweep.nc."""
    from pathlib import Path

    from .errors import ConfigError
    from .train import sweep

    if not args.scheduler:
        _positive(args, "workers", "--workers", 1, 256)
    grid = {}
    for item in args.set or []:
        name, eq, values = item.partition("=")
        if not eq or not name or not values:
            raise ValueError(f"--set {item}: expected FIELD=VALUE[,VALUE…]")
        if name in grid:
            raise ValueError(f"--set {name}: given twice")
        grid[name] = values
    options = {}
    for dest, (field, flag) in _SWEEP_FLAGS.items():
        value = getattr(args, dest)
        if value is None:
            continue
        try:
            sweep.resolve_setting(args.model, field)
        except ConfigError:
            raise ValueError(f"{flag}: not an option of otviz sweep {args.model}") from None
        if field in grid:
            raise ValueError(f"{flag} and --set {field}: give one")
        options[field] = value
    lines = []

    def report(r):
        lines.append(f"{Path(r['rundir']).name}: {r['status']} {r['message']}".rstrip())

    try:
        ds = sweep.run_sweep(args.model, grid, args.out, workers=args.workers, scheduler=args.scheduler,
                             progress=not args.quiet, report=report,
                             command="otviz " + " ".join(shlex.quote(a) for a in args.argv), **options)
    except ConfigError as exc:  # one line naming the setting, never a flag it was not typed as
        raise ValueError(f"--set {exc}" if any(exc.field == n or str(exc).startswith(n) for n in grid)
                         else str(exc)) from None
    for line in lines:
        print(line)
    dims = " × ".join(f"{d} ({ds.sizes[d]})" for d in json.loads(ds.attrs["dims"])) or "no swept setting"
    failed = int(ds.attrs["failed"])
    print(f"wrote {Path(args.out) / sweep.SWEEP_FILE}: {ds.attrs['n_runs']} runs over {dims} "
          f"({ds.attrs['trained']} trained now, {ds.attrs['n_runs'] - ds.attrs['trained']} finished before, "
          f"{failed} failed)")
    print(sweep.results_table(ds))
    return EXIT_FAILED if failed else 0


# otviz sweep's flags → (setting, flag): fixed settings of every run (each also --set FIELD=VALUE)
_SWEEP_FLAGS = {
    "epochs": ("epochs", "--epochs"), "finetune_epochs": ("finetune_epochs", "--finetune-epochs"),
    "max_events": ("max_events", "--max-events"), "n_projections": ("n_projections", "--n-projections"),
    "batch_size": ("batch_size", "--batch-size"), "seed": ("seed", "--seed"), "data": ("train_data", "--data"),
    "test": ("test_data", "--test"), "device": ("device", "--device"),
    "checkpoint_every": ("checkpoint_every", "--checkpoint-every"),
}


def _cmd_data_fetch(args) -> int:
    from .data.shipped import fetch
    from .paths import data_dir

    dest = data_dir()
    copied = fetch(args.source, dest, force=args.force)
    mb = sum(f.stat().st_size for f in copied) / 1e6
    print(f"{dest}: copied {len(copied)} files ({mb:.1f} MB) from {args.source}")
    return 0


def _cmd_data_regenerate(args) -> int:
    from .data.shipped import regenerate
    from .paths import data_dir

    _positive(args, "events", "--events")
    _positive(args, "workers", "--workers", 1, 256)
    dest = data_dir()
    for st in regenerate(dest, names=args.only, events=args.events, workers=args.workers, progress=not args.quiet):
        print(f"wrote {st['path']}: {st['events']} events in {st['seconds']:.1f} s, {st['bytes'] / 1e6:.2f} MB")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import kinds

    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of an error")
    common.add_argument("--data-dir", metavar="DIR", default=argparse.SUPPRESS,
                        help="otviz home holding data/ and runs/ (default: $OTVIZ_HOME, else the checkout "
                             "otviz runs from, else ~/.local/share/otviz)")
    p = _Parser(prog="otviz", description="Train, see and debug optimal-transport generative models for particle "
                "physics.", epilog=__doc__.split("\n\n", 1)[1].replace("``", ""), formatter_class=_Help, parents=[common])
    p.add_argument("--version", action="version", version=f"otviz {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True, title="commands", metavar="COMMAND")
    _add = sub.add_parser

    def add_parser(name, **kw):  # every command's --help shows its defaults
        kw.setdefault("formatter_class", _Help)
        kw.setdefault("description", kw.get("help"))
        return _add(name, **kw)

    sub.add_parser = add_parser

    g = sub.add_parser("generate", help="generate a Pythia 8 sample with the detector model", parents=[common])
    g.add_argument("process", choices=["zee", "ttbar", "wjets", "qcd", "clusters"],
                   help="zee: Z/γ* → e⁺e⁻; ttbar: tt̄ → e⁻ν̄ bb̄ ud̄; wjets: boosted W → qq̄′ jets; "
                        "qcd: boosted QCD jets (dijets, the same fat-jet selection as wjets); "
                        "clusters: the reference cluster model on e⁺e⁻ → Z → qq̄ partons (otviz.data.clusters)")
    g.add_argument("--events", type=count, required=True,
                   help="number of accepted events (refused when the memory or disk it needs is not free)")
    g.add_argument("--out", help="output netCDF file (default runs/PROCESS_seedS_nN.nc)")
    g.add_argument("--seed", type=int, default=1, help="random seed (chunk k is seeded from seed and k)")
    g.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    g.add_argument("--scheduler", help="address of an existing Dask scheduler (instead of a LocalCluster)")
    g.add_argument("--chunk-size", type=count, help="accepted events per task (part of the seed's meaning)")
    g.add_argument("--full", action="store_true", help="full Pythia (MPI and hadronisation on)")
    g.add_argument("--centre", action="store_true", help="wjets, qcd: centre constituents on the jet axis")
    g.add_argument("--domain", default="sim",
                   help="sim: today's settings; data: pseudo-data, FSR/ISR μ_R → 2μ_R (renormMultFac = 4) "
                        "and particle-flow resolutions × 1.25 (otviz.data.domains)")
    g.add_argument("--detector", help="JSON file with DetectorConfig overrides")
    g.add_argument("--smearing", type=float,
                   help="clusters: Herwig's ClSmrLight, the angular smearing of the decay along a perturbative quark "
                        "(default 0.78)")
    g.add_argument("--force", action="store_true", help="replace an existing output file")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.add_argument("--json", action="store_true", help="also print the timing as JSON")
    g.set_defaults(func=_cmd_generate)

    t = sub.add_parser("train", help="train a model (resumes RUNDIR's run when the settings are the same)",
                       parents=[common])
    t.add_argument("model", choices=list(kinds.presets()))
    t.add_argument("--data", nargs="+", help="training sample (default data/zee_train.nc; otus-ttbar, turbosim-ttbar "
                   "data/ttbar_train.nc; emdvae-wjets data/wjets_centred.nc, one per --out; tagger-wjets: SIGNAL BACKGROUND, "
                   "default data/calibration/wjets_sim.nc qcd_sim.nc)")
    t.add_argument("--out", required=True, nargs="+",
                   help="run directory; emdvae-wjets: several run as parallel Dask jobs")
    t.add_argument("--restart", action="store_true",
                   help="start over in a directory that holds a run (finished or not), replacing it")
    t.add_argument("--resume", action="store_true",
                   help="continue the directory's run with its stored settings (setting flags are ignored)")
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default auto: CUDA when present")
    t.add_argument("--seed", type=int, help="random seed (default 0)")
    t.add_argument("--batch-size", type=count, help="default 5000 (otus-zee), 100 (emdvae-wjets), 5000 (otus-ttbar)")
    t.add_argument("--max-events", type=count, help="use only the first N training events")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    c = t.add_argument_group("otcal-wjets (OT calibration of tagger latents; --data LATENTS, default "
                             "data/calibration/latents.nc; --batch-size, --lr, --checkpoint-every, --max-events apply "
                             "to the maps)")
    c.add_argument("--tagger", help="tagger run whose head scores the calibrated latents (default: the one the "
                   "latents file records)")
    c.add_argument("--steps", type=count, help="outer steps per class map (default 500)")
    h = t.add_argument_group("hadml, hadml-v2 (HadML cluster hadronisation; --data FILE: a cluster .nc or Herwig "
                             ".dat; --epochs, --checkpoint-every apply)")
    h.add_argument("--target", help="v2: the cluster file whose events' hadrons are the real sample (implies v2)")
    h.add_argument("--init-from", help="v2: the HadML v1 run the generator starts from (implies v2)")
    o = t.add_argument_group("otus-zee, otus-ttbar, turbosim-ttbar, turbosim-zee (--epochs, --checkpoint-every: "
                             "also tagger-wjets)")
    o.add_argument("--epochs", type=count,
                   help="epochs of the schedule (default 90; otus-ttbar 600; turbosim-ttbar 60, turbosim-zee 100; "
                        "tagger-wjets 20; hadml 30, hadml-v2 60)")
    o.add_argument("--paired-fraction", type=float,
                   help="share of the training events also seen as (z, x) pairs by the supervised terms, 0 … 1 "
                        "(default: OTUS 0, unsupervised; Turbo-Sim 1)")
    o.add_argument("--test", help="test sample for evaluation (default data/zee_test.nc; tt̄ presets data/ttbar_test.nc)")
    o.add_argument("--checkpoint-every", type=count, help="epochs between checkpoints (default 5)")
    ts = t.add_argument_group("turbosim-ttbar, turbosim-zee only")
    ts.add_argument("--sw-weight", type=float,
                    help="weight of the marginal sliced-W² terms of the preset's sw_spaces, otviz's addition; 0: the "
                         "published objective (default: turbosim-ttbar 3000 on E(x) and D(z); turbosim-zee 0)")
    u = t.add_argument_group("otus-zee, otus-ttbar only")
    u.add_argument("--finetune-epochs", type=count,
                   help="decoder-only SW(x, D(z)) epochs at the end (default 20; otus-ttbar 10: the shipped runs'; 0: none)")
    u.add_argument("--n-projections", type=count, help="sliced Wasserstein directions (default 1000)")
    u.add_argument("--no-mass-feature", action="store_true",
                   help="distances on the four-vector components only (the paper's setup)")
    a = t.add_argument_group("emdvae-wjets (β-annealing)")
    a.add_argument("--schedule", choices=["primed", "production", "paper"],
                   help="primed (default): one step at the smallest β, then the rising production pass; "
                        "production: that pass alone; paper: priming + zig-zag + production")
    a.add_argument("--betas", type=count, help="number of log-spaced β values (default 9)")
    a.add_argument("--beta-min", type=float, help="default 10^-1.8")
    a.add_argument("--beta-max", type=float, help="default 10^0.6")
    a.add_argument("--max-epochs", type=count, help="epochs per β step at most (default 30)")
    a.add_argument("--steps-per-epoch", type=count, help="batches between validations (default 250)")
    a.add_argument("--lr", type=float, help="learning rate at the start of each β step (default 0.001); tagger-wjets: "
                   "AdamW's (default 0.001)")
    a.add_argument("--latent", type=count, help="default 32")
    a.add_argument("--width", type=count, help="default 128")
    a.add_argument("--emd-backend", choices=["auto", "exact", "sinkhorn"], help="default auto: exact")
    a.add_argument("--threads", type=count, help="torch CPU threads per run; a runtime setting, so it may differ "
                   "on a resume (default: torch's; OTUS runs do not take it)")
    a.add_argument("--workers", type=count, help="LocalCluster workers for several runs (default 2)")
    a.add_argument("--scheduler", help="address of an existing Dask scheduler")
    t.set_defaults(func=_cmd_train)

    ev = sub.add_parser("evaluate", help="fidelity metrics of a trained OTUS or Turbo-Sim run on its test sample "
                                         "(an OT calibration run: its stored AUC table)",
                        parents=[common])
    ev.add_argument("rundir", nargs="+", help="run directory (several: each is evaluated)")
    ev.add_argument("--table", action="store_true",
                    help="tt̄ runs: print the Turbo-Sim slide's KS table (a column per run, floors, published rows)")
    ev.add_argument("--test", help="test sample (default: the run's test_data)")
    ev.add_argument("--n-projections", type=count, default=None,
                    help="random directions of the sliced Wasserstein distance (default: 1000)")
    ev.add_argument("--json", action="store_true", help="print all numbers as JSON")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.set_defaults(func=_cmd_evaluate)

    la = sub.add_parser("latents", help="a tagger's 128-d latents of jet samples (the input of OT calibration)",
                        parents=[common])
    la.add_argument("rundir", help="tagger run directory")
    la.add_argument("files", nargs="+", help="jet samples (otviz generate wjets|qcd --centre); each file's domain "
                    "attribute (sim/data) and process (wjets: label 1, else 0) are recorded")
    la.add_argument("--out", required=True, help="latents netCDF to write")
    la.add_argument("--labels", type=int, nargs="+", help="class label per file (default: 1 for wjets, else 0)")
    la.add_argument("--max-events", type=count, help="the first N jets of each file")
    la.set_defaults(func=_cmd_latents)

    dm = sub.add_parser("dimension", help="D1/D2 vs β, KL per dimension and D_corr of an EMD-VAE run",
                        parents=[common])
    dm.add_argument("rundir", help="run directory of an EMD-VAE annealing run")
    dm.add_argument("--jets", type=count, default=1000, help="jets for the correlation dimension (pairs ~ n²/2)")
    dm.add_argument("--workers", help=argparse.SUPPRESS)  # removed: refused with a message (_cmd_dimension)
    dm.add_argument("--quiet", action="store_true", help="no progress bar")
    dm.add_argument("--force", action="store_true",
                    help="replace a stored dimension.nc computed from a different number of jets")
    dm.set_defaults(func=_cmd_dimension)

    i = sub.add_parser("info", help="validate a sample file and summarise it", parents=[common])
    i.add_argument("path", help="a sample file (.nc; relative paths are also looked up in the otviz home), "
                   "or any netCDF file otviz wrote (sweep.nc, metrics.nc): described, not validated")
    i.set_defaults(func=_cmd_info)

    rn = sub.add_parser("runs", help="list the runs (kind, status, size, date, data, key metrics with floors)",
                        parents=[common])
    rn.add_argument("--json", action="store_true", help="one JSON object per run")
    rn.set_defaults(func=_cmd_runs)

    sw = sub.add_parser("sweep", help="a grid of training runs over settings as Dask tasks, then one sweep.nc",
                        parents=[common], epilog="FIELD: a config field (batch_size, seed, …), a preset argument "
                        "(epochs, finetune_epochs) or a stage field: lam, beta_e, beta_d, tau, lr … on every stage "
                        "where the preset has the term on, else on the first stage (beta_anchor: beta_e and beta_d "
                        "together), STAGE.FIELD "
                        "on one stage. Finished runs are skipped, interrupted ones resume (otviz.train.sweep).")
    sw.add_argument("model", choices=list(kinds.presets()))
    sw.add_argument("--set", action="append", metavar="FIELD=V1,V2",
                    help="values of a setting (repeatable; several values make a dimension of the grid)")
    sw.add_argument("--out", required=True, help="sweep directory: one run directory per point and sweep.nc")
    sw.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes (one run each)")
    sw.add_argument("--scheduler", help="address of an existing Dask scheduler (--out on a shared file system)")
    sw.add_argument("--epochs", type=count, help="the preset's epochs (otus-zee: default 90)")
    sw.add_argument("--finetune-epochs", type=count, help="the preset's decoder fine-tune epochs")
    sw.add_argument("--max-events", type=count, help="use only the first N training events")
    sw.add_argument("--n-projections", type=count, help="sliced Wasserstein directions")
    sw.add_argument("--batch-size", type=count, help="events per batch of every run (default: the preset's)")
    sw.add_argument("--seed", type=int, help="random seed of every run (default 0; --set seed=0,1,2 sweeps it)")
    sw.add_argument("--data", help="training sample")
    sw.add_argument("--test", help="test sample of the metrics")
    sw.add_argument("--device", choices=["auto", "cpu", "cuda"])
    sw.add_argument("--checkpoint-every", type=count, help="epochs between checkpoints")
    sw.add_argument("--quiet", action="store_true", help="no progress bar")
    sw.set_defaults(func=_cmd_sweep)

    d = sub.add_parser("data", help="put the shipped samples and pretrained runs into the otviz home",
                       parents=[common])
    dsub = d.add_subparsers(dest="data_cmd", required=True, metavar="ACTION")
    f = dsub.add_parser("fetch", help="copy the shipped samples and pretrained runs from a checkout",
                        description="copy the shipped samples and pretrained runs from a checkout into "
                                    "the otviz home's data/", parents=[common], formatter_class=_Help)
    f.add_argument("--from", dest="source", required=True, metavar="DIR",
                   help="an otviz checkout (or its data/ folder)")
    f.add_argument("--force", action="store_true", help="copy files that are already there too")
    f.set_defaults(func=_cmd_data_fetch)
    r = dsub.add_parser("regenerate", help="generate the shipped samples again (data/README.md's commands)",
                        description="generate the shipped samples into the otviz home's data/ with their "
                                    "recorded commands and seeds (pretrained runs: otviz data fetch)",
                        parents=[common], formatter_class=_Help)
    r.add_argument("--only", nargs="+", metavar="FILE", help="only these samples (e.g. zee_test.nc)")
    r.add_argument("--events", type=count, help="events per sample instead of the shipped counts (a quick check)")
    r.add_argument("--workers", type=count, default=2, help="LocalCluster worker processes")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_cmd_data_regenerate)
    return p


def _one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line, naming the flag of a config field where there is one."""
    from .errors import ConfigError

    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        msg = f"{exc.filename}: {exc.strerror}"
    else:
        msg = str(exc) or type(exc).__name__
    if isinstance(exc, ConfigError) and exc.field in FIELD_FLAGS and FIELD_FLAGS[exc.field] not in msg:
        msg = f"{msg} ({FIELD_FLAGS[exc.field]})"
    return " ".join(msg.split())


def _is_user_error(exc: BaseException) -> bool:
    """Errors about the input (files, flags, settings, run directories) print their message alone;
    anything else also names its type and points at --debug."""
    from .errors import RunBusyError

    return isinstance(exc, (ValueError, OSError, RunBusyError))


def _is_training_failure(exc: BaseException) -> bool:
    """A :class:`otviz.train.trainer.TrainingFailed` (looked up only once torch is loaded, so that
    ``--help`` and argument errors never import it)."""
    trainer = sys.modules.get(f"{__package__}.train.trainer")
    return trainer is not None and isinstance(exc, trainer.TrainingFailed)


_TERMINATED: list[int] = []  # SIGTERM seen (the KeyboardInterrupt it raised exits 143, not 130)


def _terminate_as_interrupt():
    """SIGTERM (``kill``, ``timeout``, a batch system) ends a command like Ctrl-C, so a training
    run records itself as interrupted instead of leaving status.json at "running". Returns a
    function restoring the previous handler (a no-op off the main thread)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):
        _TERMINATED.append(signum)
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)


def main(argv=None) -> int:
    """Run the command line; returns the exit status (see the module docstring)."""
    import traceback

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # usage errors (one line, see _Parser.error) and --help
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    args.argv = argv
    debug = getattr(args, "debug", False)
    if getattr(args, "data_dir", None):
        os.environ["OTVIZ_HOME"] = os.path.abspath(os.path.expanduser(args.data_dir))
    _TERMINATED.clear()
    restore = _terminate_as_interrupt()
    name = "otviz " + " ".join(c for c in (args.cmd, getattr(args, "data_cmd", None)) if c)
    try:
        try:
            rc = args.func(args)
            sys.stdout.flush()
            return rc
        except BrokenPipeError:
            raise
        except KeyboardInterrupt:
            print("otviz: interrupted", file=sys.stderr)
            return EXIT_TERMINATED if _TERMINATED else EXIT_INTERRUPTED
        except Exception as exc:
            if debug:
                traceback.print_exc()
            if _is_training_failure(exc):
                print(f"otviz: training failed: {_one_line(exc)}", file=sys.stderr)
                return EXIT_FAILED
            if isinstance(exc, CommandError):
                print(f"otviz {exc.command}: {_one_line(exc)}", file=sys.stderr)
            elif _is_user_error(exc):
                print(f"{name}: {_one_line(exc)}", file=sys.stderr)
            else:
                hint = "" if debug else " (--debug shows the traceback)"
                print(f"{name}: {type(exc).__name__}: {_one_line(exc)}{hint}", file=sys.stderr)
            return EXIT_ERROR
    except BrokenPipeError:
        # the reader went away (``| head``): stop quietly; point stdout at /dev/null so the
        # interpreter's final flush does not complain either
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_PIPE
    finally:
        restore()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
