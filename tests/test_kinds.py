"""The registry of model kinds (otviz.kinds): a kind registered here — a tiny config, trainer and
model defined in this file — is trained by ``otviz train``, started by the dashboard's registry
and opened by ``otviz.load_run`` without any other code knowing its name; and no module outside
the registry and a kind's own modules tests a kind's name."""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import param
import pytest
import torch

from otviz import kinds
from otviz.train.trainer import BackgroundRun, atomic_torch_save, atomic_write_json

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class ToyModelConfig:
    width: int = 3


class ToyModel(torch.nn.Module):
    def __init__(self, cfg: ToyModelConfig):
        super().__init__()
        self.linear = torch.nn.Linear(cfg.width, 1)


@dataclass
class ToyConfig:
    kind: str = "toy-kind"
    epochs: int = 2
    device: str = "cpu"
    seed: int = 0
    model_config: ToyModelConfig = field(default_factory=ToyModelConfig)

    def validate(self):
        if not 1 <= self.epochs <= 10:
            raise ValueError(f"ToyConfig: epochs = {self.epochs} outside 1 … 10")
        return self

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "ToyConfig":
        d = json.loads(text)
        return cls(**{**d, "model_config": ToyModelConfig(**d["model_config"])})

    def disk_plan(self):
        return 0, self.epochs


def toy_preset(epochs: int = 2, **kw) -> ToyConfig:
    return ToyConfig(epochs=epochs, **kw)


class ToyRun(BackgroundRun):
    def __init__(self, rundir, config=None, restart=False):
        self._open(rundir, config, ToyConfig, restart)

    def _check_data(self, config):
        pass

    def _train(self):
        model = ToyModel(self.config.model_config)
        with torch.no_grad():  # "training": epoch e sets every weight to e
            for e in range(1, self.config.epochs + 1):
                model.linear.weight.fill_(float(e))
                model.linear.bias.fill_(-float(e))
                self.history.append({"epoch": e, "loss": 1.0 / e, "seconds": 0.0})
                self._emit(type="epoch", epoch=e)
        atomic_write_json(self.rundir / "history.json", self.history)
        atomic_torch_save({"model": model.state_dict()}, self.rundir / "model.pt")


def toy_product(rundir, progress=None):
    """The toy kind's post-run product: the final bias, stored in the run directory."""
    from otviz.train.run import load_run

    (Path(rundir) / "bias.txt").write_text(str(float(load_run(rundir).model.linear.bias.detach())))


def train_toy(args) -> int:
    """``otviz train toy-preset``: the kind's own command."""
    kind = kinds.for_preset(args.model)
    run = kind.run_class()(args.out[0], kind.preset(args.model)(epochs=args.epochs or 2))
    return 0 if run.run_blocking() == "done" else 1


@pytest.fixture
def toy_kind():
    kind = kinds.register(kinds.Kind(
        name="toy", description="a toy run", tag="toy-kind", config=f"{__name__}:ToyConfig",
        run=f"{__name__}:ToyRun", model=f"{__name__}:ToyModel", presets={"toy-preset": f"{__name__}:toy_preset"},
        train_command=f"{__name__}:train_toy", cli_options=("epochs",), commands=("dimension",),
        products=(f"{__name__}:toy_product",)))
    try:
        yield kind
    finally:
        kinds.unregister("toy")


def test_a_registered_kind_trains_from_the_cli_and_loads(toy_kind, tmp_path, capsys):
    import otviz
    from otviz.cli import build_parser, main
    from otviz.train.run import run_kind

    train = next(a for a in build_parser()._subparsers._group_actions[0].choices["train"]._actions
                 if a.dest == "model")
    assert list(train.choices) == ["otus-zee", "otus-ttbar", "emdvae-wjets", "turbosim-ttbar", "turbosim-zee",
                                   "tagger-wjets", "otcal-wjets", "hadml", "hadml-v2", "toy-preset"]
    assert main(["train", "toy-preset", "--out", str(tmp_path / "r"), "--epochs", "3"]) == 0
    assert run_kind(tmp_path / "r") == "toy"
    run = otviz.load_run(tmp_path / "r")
    assert run.kind == "toy" and isinstance(run.model, ToyModel) and run.config.epochs == 3
    # the weights of the last "epoch" (3), read back through the kind's model class
    assert torch.equal(run.model.linear.weight, torch.full((1, 3), 3.0))
    assert float(run.model.linear.bias.detach()) == -3.0
    assert [h["epoch"] for h in run.history] == [1, 2, 3] and run.status["status"] == "done"
    # otviz dimension takes the toy kind (Kind.commands); otviz evaluate refuses it by description
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert ("a toy run; otviz evaluate takes an OTUS run, a tt̄ OTUS run, a Turbo-Sim run or an OT calibration run "
            "(use otviz dimension)") in err
    # a foreign kind's flag is refused, naming it
    assert main(["train", "toy-preset", "--out", str(tmp_path / "r2"), "--betas", "3"]) == 2
    assert "--betas: not an option of otviz train toy-preset" in capsys.readouterr().err


def test_the_dashboard_registry_starts_a_registered_kind(toy_kind, tmp_path):
    from otviz.train import registry
    from otviz.train.run import load_run

    cfg = ToyConfig(epochs=4)
    # disk estimate from the kind's model (4 float32 parameters) and the config's disk_plan
    assert registry.parameter_bytes(cfg) == 4 * 4
    assert registry.estimate_disk_bytes(cfg) == 7 * 16 + 2000 * 4 + 64 * 1024
    run = registry.start_run(tmp_path / "d", cfg)
    assert isinstance(run, ToyRun) and run.wait(30) == "done"
    assert float(load_run(tmp_path / "d").model.linear.bias.detach()) == -4.0
    # the dashboard's post-run hook computes the kind's products into the run directory
    assert registry.post_run_metrics(tmp_path / "d") == "metrics"
    assert (tmp_path / "d" / "bias.txt").read_text() == "-4.0"
    kinds.unregister("toy")  # an unknown kind gets nothing computed, and no error
    assert registry.post_run_metrics(tmp_path / "d") is None


def test_registry_refuses_clashes_and_unknown_names():
    with pytest.raises(ValueError, match="already registered"):
        kinds.register(kinds.get("otus"))
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        kinds.for_preset("nope")
    assert kinds.for_config_dict({"kind": "emdvae-anneal"}).name == "emdvae"
    assert kinds.for_config_dict({"stages": []}).name == "otus"  # OTUS configs carry no "kind" field
    assert kinds.for_config_dict({"kind": "elsewhere"}) is None


def test_shipped_runs_are_found_by_their_registered_kind():
    from otviz.paths import PRETRAINED
    from otviz.train.run import run_kind

    assert run_kind(PRETRAINED / "otus-zee") == "otus"
    assert run_kind(PRETRAINED / "emdvae-wjets") == "emdvae"


def _own_modules() -> set[Path]:
    """Files of the kinds' own modules (config, trainer, model, presets): they may name themselves."""
    out = {ROOT / "otviz" / "kinds.py"}
    for k in kinds.kinds():
        for dotted in (k.config, k.run, k.model, *k.presets.values()):
            out.add(ROOT / (dotted.partition(":")[0].replace(".", "/") + ".py"))
    return out


def test_no_module_outside_the_registry_branches_on_a_kind_name():
    names = sorted({n for k in kinds.kinds() for n in (k.name, k.tag, *k.presets) if n}, key=len, reverse=True)
    lit = "[\"'](?:" + "|".join(map(re.escape, names)) + ")[\"']"
    branch = re.compile(rf"(?:==|!=)\s*{lit}|{lit}\s*(?:==|!=)|\[\s*{lit}\s*\]|\bin\s*\([^)]*{lit}"
                        rf"|isinstance\([^)]*\b(?:TrainConfig|AnnealConfig|TurboSimConfig|OTUS|EMDVAE|TurboSim)\)")
    own = _own_modules()
    found = []
    for f in sorted((ROOT / "otviz").rglob("*.py")) + sorted((ROOT / "apps").glob("*.py")):
        if f in own:
            continue
        for i, line in enumerate(f.read_text().splitlines(), 1):
            if branch.search(line):
                found.append(f"{f.relative_to(ROOT)}:{i}: {line.strip()}")
    assert len(own) == 13 and not found, "\n".join(found)  # kinds.py + 12 modules of the 8 kinds
    # the pattern does catch the branches the registry replaced
    assert branch.search('if args.model == "emdvae-wjets":') and branch.search('PRESETS["otus-zee"](epochs=1)')
    assert branch.search('return "emdvae" if isinstance(self.config, AnnealConfig) else "otus"')


def test_run_menus_name_a_runs_variant_from_its_config():
    """HadML v1 and v2 runs are one kind; the run menu tells them apart by the config's ``mode``
    (``Kind.variant_field``), not by a branch on the kind."""
    import json

    from otviz.ui.state import run_label

    hadml = kinds.get("hadml")
    assert hadml.ui_label({"mode": "v2"}) == "HadML v2" and hadml.ui_label() == "HadML"
    assert kinds.get("otus").ui_label({"mode": "v2"}) == "OTUS"  # no variant field: the label alone
    root = ROOT / "data" / "pretrained"
    for name, variant in (("hadml-v1", "v1"), ("hadml-v2", "v2")):
        assert json.loads((root / name / "config.json").read_text())["mode"] == variant
        assert run_label(root / name, root, shipped=True) == f"pretrained/{name} · HadML {variant} (shipped)"


def test_no_ui_module_branches_on_a_kind_label():
    """otviz/ui shows kinds by their labels (``Kind.label``, ``train_label``) and never tests them:
    the Train page once picked its form by ``self.mode.value.startswith("EMD-VAE")``."""
    labels = {t for k in kinds.kinds() for t in (k.ui_label(), k.train_choice(), k.description) if t}
    literal = re.compile(r"""(?:==|!=)\s*["']([^"']+)["']|["']([^"']+)["']\s*(?:==|!=)"""
                         r"""|(?:startswith|endswith)\(\s*["']([^"']+)["']""")

    def branches(line: str) -> bool:
        found = [v for m in literal.finditer(line) for v in m.groups() if v]
        return any(lab.startswith(v) or lab.endswith(v) for v in found for lab in labels)

    found = [f"{f.relative_to(ROOT)}:{i}: {line.strip()}" for f in sorted((ROOT / "otviz" / "ui").rglob("*.py"))
             for i, line in enumerate(f.read_text().splitlines(), 1) if branches(line)]
    assert not found, "\n".join(found)
    assert branches('if self.mode.value.startswith("EMD-VAE"):') and branches('mode == "OTUS Z→ee"')
    assert not branches('if status == "done":')


class ToyView:
    """The toy kind's page: the run its picker selects."""

    def __init__(self, state):
        self.state = state

    def __panel__(self):
        import panel as pn

        return pn.pane.Markdown(f"toy run {self.state.toy_path}")


class ToySettings(param.Parameterized):
    """The toy kind's Train page form."""

    TITLE = "New toy run"
    epochs = param.Integer(default=2, bounds=(1, 10))

    def to_config(self, state=None):
        return ToyConfig(epochs=self.epochs).validate()

    def describe(self):
        return f"toy, {self.epochs} epochs"


def test_a_registered_kind_plugs_into_the_app(toy_kind, tmp_path, monkeypatch):
    """One register call gives the app the kind's page (before Runs), its run menu (a new
    ExplorerState picker named by the kind's label) and its Train page form, whose Start trains
    a run of the kind through the settings class; explorer.py and train_view.py name no kind."""
    import time

    import otviz.ui.state as ui_state
    from otviz.train import registry
    from otviz.ui.explorer import LatentExplorer

    kinds.register(dataclasses.replace(toy_kind, picker="toy_path", label="Toy", train_label="Toy training",
                                       pages=(kinds.Page("Toy page", "toy", f"{__name__}:ToyView"),),
                                       train_settings=f"{__name__}:ToySettings"), replace=True)
    monkeypatch.setattr(ui_state, "RUNS", tmp_path / "runs")
    assert ToyRun(tmp_path / "runs" / "first", ToyConfig(epochs=1)).run_blocking() == "done"
    app = LatentExplorer()
    assert [t for t, _ in app.pages()] == ["Data", "Train", "Transport", "Residuals", "Latent traversal",
                                          "Dimensionality", "Calibration", "Hadronisation", "Toy page", "Compare runs",
                                          "Runs"]
    assert [w.name for w in app.pickers()] == ["OTUS / Turbo-Sim run", "EMD-VAE run", "OT calibration run", "HadML run",
                                                    "Toy run"]
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime((tmp_path / "runs" / "first" / "model.pt").stat().st_mtime))
    assert app.state.param.toy_path.names == {f"first · Toy · {when}": str(tmp_path / "runs" / "first")}
    assert isinstance(app.toy, ToyView) and app.toy.state.toy_path == str(tmp_path / "runs" / "first")
    train = app.train
    assert list(train.mode.options) == ["OTUS Z→ee", "OTUS tt̄", "EMD-VAE β-annealing", "Turbo-Sim tt̄", "W-vs-QCD tagger",
                                        "OT calibration of tagger latents", "HadML cluster hadronisation",
                                        "Toy training"]
    train.mode.value = "Toy training"
    assert train._form(300)[0].object == "### New toy run"
    train.settings_for("toy").epochs = 3
    train._start()
    deadline = time.time() + 60
    while not train._done:
        assert time.time() < deadline, train.status.object
        train.poll()
        time.sleep(0.1)
    assert "Done" in train.status.object and registry.get_entry(train.rundir).label == "toy, 3 epochs"
    from otviz.train.run import load_run

    run = load_run(train.rundir)
    assert run.kind == "toy" and run.config.epochs == 3 and float(run.model.linear.bias.detach()) == -3.0
    assert app.state.toy_path == str(train.rundir)  # the finished run is selected in its menu
