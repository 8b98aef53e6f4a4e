"""The shipped samples and pretrained runs: what they are, and putting them into a data home
(:func:`otviz.paths.data_dir`) by copying them (``otviz data fetch``) or generating the samples
again with the recorded commands (``otviz data regenerate``, what ``data/make_data.sh`` runs)."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    name: str  # file name under data/
    process: str
    events: int
    seed: int
    centre: bool = False

    def command(self, events: int | None = None, workers: int = 2) -> str:
        """The ``otviz generate`` command that makes this file (as recorded in its attributes)."""
        n = self.events if events is None else events
        return (f"otviz generate {self.process} --events {n} --seed {self.seed} --workers {workers} "
                f"--out data/{self.name}{' --centre' if self.centre else ''} --force --quiet")


SAMPLES = (
    Sample("zee_train.nc", "zee", 100_000, 1),
    Sample("zee_test.nc", "zee", 50_000, 2),
    Sample("ttbar_train.nc", "ttbar", 50_000, 3),
    Sample("ttbar_test.nc", "ttbar", 25_000, 4),
    Sample("wjets.nc", "wjets", 30_000, 5),
    Sample("wjets_centred.nc", "wjets", 30_000, 6, centre=True),
)
CLUSTER_FILES = ("clusters/zqq_clusters.nc", "clusters/zqq_clusters_smear.nc")  # issue 15 (data/make_data.sh clusters)
RUNS = ("otus-zee", "otus-ttbar", "turbosim-ttbar", "paired-fraction-sweep", "emdvae-wjets-centred",
        "emdvae-wjets", "tagger-wjets", "otcal-wjets", "hadml-v1", "hadml-v2")  # under data/pretrained/ (paired-fraction-sweep: a sweep.nc)
_RUN_SKIP = {"checkpoint.pt", "status.lock"}  # never part of a shipped run
_CACHE_PREFIX = "derived-"  # arrays the dashboard derives and caches in a run: made again where needed


def _source_data(src: Path) -> Path:
    """``src`` itself when it holds the samples, else its ``data/`` (a checkout)."""
    if (src / SAMPLES[0].name).exists() or (src / "pretrained").is_dir():
        return src
    if (src / "data").is_dir():
        return src / "data"
    raise FileNotFoundError(f"{src}: holds neither the shipped samples nor a data/ folder (--from)")


def fetch(src, dest, force: bool = False) -> list[Path]:
    """Copy the shipped samples and pretrained runs from ``src`` (a checkout or its ``data/``)
    into ``dest`` (not the ``derived-*`` caches the dashboard keeps in a run); files already there with the same size are kept unless ``force``. Returns
    the files copied."""
    src, dest = _source_data(Path(src).expanduser()), Path(dest)
    if src.resolve() == dest.resolve():
        return []
    files = [src / s.name for s in SAMPLES if (src / s.name).exists()] + [src / "README.md"]
    files += [src / name for name in CLUSTER_FILES if (src / name).exists()]
    for run in RUNS:
        base = src / "pretrained" / run
        if base.is_dir():
            files += [f for f in sorted(base.rglob("*")) if f.is_file() and f.name not in _RUN_SKIP
                      and not f.name.endswith(".tmp") and not f.name.startswith(_CACHE_PREFIX)]
    if (src / "pretrained" / "README.md").exists():
        files.append(src / "pretrained" / "README.md")
    copied = []
    for f in files:
        if not f.exists():
            continue
        target = dest / f.relative_to(src)
        if target.exists() and not force and target.stat().st_size == f.stat().st_size:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        shutil.copy2(f, tmp)
        tmp.replace(target)
        copied.append(target)
    return copied


def regenerate(dest, names=None, events: int | None = None, workers: int = 2, progress: bool = True) -> list[dict]:
    """Generate the shipped samples (or those in ``names``) into ``dest`` with their recorded
    seeds; ``events`` overrides the event counts (a quick check). Same seed → same events on
    any number of workers. Returns the statistics of each generation."""
    from .generate import generate_to_file

    chosen = [s for s in SAMPLES if names is None or s.name in names]
    unknown = set(names or ()) - {s.name for s in SAMPLES}
    if unknown:
        raise ValueError(f"{', '.join(sorted(unknown))}: not a shipped sample "
                         f"(one of {', '.join(s.name for s in SAMPLES)})")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for s in chosen:
        _, stats = generate_to_file(dest / s.name, overwrite=True, process=s.process,
                                    n_events=s.events if events is None else events, seed=s.seed,
                                    workers=workers, centre=s.centre, progress=progress,
                                    command=s.command(events, workers))
        out.append(stats)
    return out
