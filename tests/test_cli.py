"""The command line: one-line errors with exit status 2 (tracebacks only with --debug), a failed
training run in one line with status 1, quiet broken pipes, protected finished runs and the
--restart / --resume semantics of a run directory that holds a run."""
import hashlib
import inspect
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import otviz
from otviz.cli import main
from otviz.train.config import TrainConfig, otus_ttbar_config, otus_zee_config

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
ZEE, ZEE_TEST, WJETS = str(DATA / "zee_train.nc"), str(DATA / "zee_test.nc"), str(DATA / "wjets.nc")
PRETRAINED = DATA / "pretrained"


def _one_error_line(capsys, *needles):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("otviz"), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


OTUS = ["train", "otus-zee", "--data", ZEE, "--test", ZEE_TEST]
VAE = ["train", "emdvae-wjets", "--data", WJETS]


def _paper_steps(n):
    from otviz.train.annealing import annealing_schedule

    return sum(len(p.betas) for p in annealing_schedule(10 ** -1.8, 10 ** 0.6, n, priming=True, zigzags=1))


@pytest.mark.parametrize("args, line", [
    (OTUS + ["--batch-size", "0"], "--batch-size 0: allowed 1 … 10000000"),
    (OTUS + ["--batch-size", "-10"], "--batch-size -10: allowed 1 … 10000000"),
    (OTUS + ["--batch-size", "2e7"], "--batch-size 2e7: allowed 1 … 10000000"),  # the value as typed
    (OTUS + ["--checkpoint-every", "0"], "--checkpoint-every 0: allowed 1 … 5000"),
    (OTUS + ["--n-projections", "0"], "--n-projections 0: allowed 1 … 10000"),
    (OTUS + ["--epochs", "0"], "--epochs 0: allowed 1 … 5000"),
    (OTUS + ["--epochs=-3"], "--epochs -3: allowed 1 … 5000"),
    (OTUS + ["--max-events", "-5"], "--max-events -5: allowed 1 … 100000000"),
    (OTUS + ["--finetune-epochs", "-2"], "--finetune-epochs -2: allowed 0 … 5000"),
    (OTUS + ["--seed", "-1"], "--seed -1: allowed 0 … 4294967295"),
    (VAE + ["--batch-size", "0"], "--batch-size 0: allowed 1 … 100000"),
    (VAE + ["--lr", "1e9"], "--lr 1e9: allowed [1e-08, 1]"),
    (VAE + ["--betas", "0"], "--betas 0: allowed 1 … 40"),
    (VAE + ["--max-epochs", "0"], "--max-epochs 0: allowed 1 … 200"),
    (VAE + ["--latent", "0"], "--latent 0: allowed 1 … 256"),
    (VAE + ["--latent", "257"], "--latent 257: allowed 1 … 256"),
    (VAE + ["--width", "4096"], "--width 4096: allowed 1 … 1024"),
    (VAE + ["--beta-min", "-1"], "--beta-min -1: allowed [1e-06, 100]"),
    (VAE + ["--beta-min", "5", "--beta-max", "1"], "--beta-min 5: exceeds the largest β, 1"),
    (VAE + ["--max-events", "1"], "--max-events 1: allowed 2 … 100000000"),
    (VAE + ["--threads", "0"], "--threads 0: allowed 1 … 1024"),
    (VAE + ["--betas", "20", "--schedule", "paper"],
     f"--betas 20: the schedule has {_paper_steps(20)} β steps; allowed 1 … 40"),
])
def test_a_setting_out_of_range_names_the_flag_as_typed(tmp_path, capsys, args, line):
    """One line ``otviz train: --flag VALUE: reason``, exit 2, nothing written — not the
    dataclass's or the preset's field name (``TrainConfig.batch_size``, ``otus_zee_config.epochs``)."""
    out = tmp_path / "run"
    assert main(args + ["--out", str(out)]) == 2
    assert _one_error_line(capsys) == f"otviz train: {line}"
    assert not out.exists()


@pytest.mark.parametrize("args, needles", [
    (OTUS + ["--lr", "0.1"], ["--lr", "not an option of otviz train otus-zee"]),
    (["train", "otus-zee", "--data", WJETS], ["wjets.nc", "train_data", "e-"]),
    (VAE + ["--epochs", "3"], ["--epochs", "not an option of otviz train emdvae-wjets"]),
    (["train", "emdvae-wjets", "--data", ZEE], ["zee_train.nc", "jet constituents"]),
    (OTUS + ["--restart", "--resume"], ["--restart and --resume"]),
])
def test_invalid_training_settings_are_one_line_and_write_nothing(tmp_path, capsys, args, needles):
    out = tmp_path / "run"
    assert main(args + ["--out", str(out)]) == 2
    assert _one_error_line(capsys, *needles).startswith("otviz train: ")  # every error of a command: its prefix
    assert not out.exists()  # validated before the run directory is created


def test_bad_inputs_of_the_other_commands(tmp_path, capsys):
    truncated = tmp_path / "cut.nc"
    truncated.write_bytes((DATA / "zee_test.nc").read_bytes()[:50_000])
    (tmp_path / "notarun").mkdir()
    bad_json = tmp_path / "det.json"
    cases = [
        (["info", str(tmp_path / "missing.nc")], ["missing.nc", "no such file"]),
        (["info", str(truncated)], ["cut.nc", "truncated"]),
        (["evaluate", str(tmp_path / "missing")], ["missing", "no such run directory"]),
        (["evaluate", str(tmp_path / "notarun")], ["notarun", "config.json"]),
        (["evaluate", str(PRETRAINED / "emdvae-wjets")], ["EMD-VAE", "otviz evaluate takes an OTUS run"]),
        (["dimension", str(PRETRAINED / "otus-zee")], ["an OTUS run", "otviz dimension takes an EMD-VAE"]),
        (["dimension", str(tmp_path / "notarun")], ["notarun", "config.json"]),
        # a stored 1000-jet D_corr is not silently replaced by a 200-jet one (the shipped file is checked below)
        (["dimension", str(PRETRAINED / "emdvae-wjets-centred"), "--jets", "200"],
         ["dimension.nc holds D_corr from 1000 jets", "--force"]),
        (["generate", "zee", "--events", "0", "--out", str(tmp_path / "a.nc")], ["--events"]),
        (["generate", "zee", "--events", "1e12", "--out", str(tmp_path / "a.nc")], ["--events", "memory"]),
        (["generate", "zee", "--events", "abc"], ["otviz generate: --events abc: not a whole number"]),
        (["generate", "zee", "--events", "10", "--detector", str(tmp_path / "none.json")], ["none.json"]),
    ]
    for args, needles in cases:
        assert main(args) == 2, args
        _one_error_line(capsys, f"otviz {args[0]}: ", *needles)
    for text, needles in [('{"jet_r": 0.4, "bogus": 1}', ["det.json", "unknown", "bogus"]),
                          ('{"jet_r": "wide"}', ["jet_r", "must be a number"]),
                          ('{"electron_efficiency": 1.5}', ["electron_efficiency", "[0, 1]"]),
                          ('{"jet_energy": {"a": 0.6}}', ["jet_energy"])]:
        bad_json.write_text(text)
        assert main(["generate", "zee", "--events", "10", "--detector", str(bad_json),
                     "--out", str(tmp_path / "d.nc")]) == 2
        _one_error_line(capsys, "otviz generate: ", *needles)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.nc", "det.json", "notarun"]  # nothing written
    assert int(otviz.load_run(PRETRAINED / "emdvae-wjets-centred").dimensionality.attrs["n_jets_corr"]) == 1000


def test_debug_shows_the_traceback(tmp_path, capsys):
    assert main(["--debug", "info", str(tmp_path / "missing.nc")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("otviz info: ")
    assert main(["info", str(tmp_path / "missing.nc"), "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly_with_141():
    # the reader is gone before otviz writes anything (as with `otviz info FILE | head -1`)
    proc = subprocess.Popen([sys.executable, "-m", "otviz.cli", "info", ZEE_TEST], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(120) == 141 and err == ""


def _hashes(folder: Path):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_training_into_a_copy_of_a_shipped_run_refuses(tmp_path, capsys):
    copy = tmp_path / "otus-zee"
    shutil.copytree(PRETRAINED / "otus-zee", copy)
    before = _hashes(copy)
    assert main(["train", "otus-zee", "--out", str(copy), "--epochs", "1"]) == 2
    _one_error_line(capsys, str(copy), "different config", "stages", "--restart")
    assert _hashes(copy) == before
    # resuming it finds it finished and leaves it alone
    assert main(["train", "otus-zee", "--out", str(copy), "--resume", "--quiet"]) == 0
    epochs = len(json.loads((copy / "history.json").read_text()))  # 110 for the shipped run
    cap = capsys.readouterr()
    assert f"already finished ({epochs} epochs)" in cap.out
    assert "stored settings" not in cap.err  # no setting typed: the defaults that differ are not reported
    assert _hashes(copy) == before
    # and an OTUS run is not trained into as an EMD-VAE run
    assert main(["train", "emdvae-wjets", "--out", str(copy), "--max-events", "200"]) == 2
    _one_error_line(capsys, "an OTUS run", "--restart")
    assert _hashes(copy) == before


def _tiny(out, *extra):
    return ["train", "otus-zee", "--data", ZEE, "--test", ZEE_TEST, "--out", str(out), "--max-events", "1000",
            "--batch-size", "500", "--n-projections", "20", "--finetune-epochs", "0", "--device", "cpu", "--quiet",
            *extra]


def test_failed_run_directory_resume_restart_and_failure_line(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    # a run that fails: a persistent non-finite loss → one line, exit status 1
    monkeypatch.setattr("otviz.train.trainer.otus_loss",
                        lambda *a, **k: (torch.tensor(float("nan"), requires_grad=True), {}))
    assert main(_tiny(out, "--epochs", "2")) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [err.strip()] and err.startswith("otviz: training failed: ")
    assert "gave up after 3 roll-backs" in err and "Traceback" not in err
    assert json.loads((out / "status.json").read_text())["status"] == "failed"
    monkeypatch.undo()
    # other settings: refused, naming the differing fields and both flags; nothing changes
    before = _hashes(out)
    assert main(_tiny(out, "--epochs", "3", "--seed", "5")) == 2
    _one_error_line(capsys, "seed: 0 → 5", "stages", "--resume", "--restart")
    assert _hashes(out) == before
    # --resume continues with the stored settings (2 epochs), saying what it ignores
    assert main(_tiny(out, "--epochs", "3", "--seed", "5", "--resume")) == 0
    cap = capsys.readouterr()
    assert "not this command's" in cap.err and "seed: 0 → 5" in cap.err and "resuming the run" in cap.out
    run = otviz.load_run(out)
    assert run.status["status"] == "done" and len(run.history) == 2 and run.config.seed == 0
    # finished: the same settings do nothing, --restart starts over with the new ones
    assert main(_tiny(out, "--epochs", "2")) == 0
    assert "already finished" in capsys.readouterr().out
    assert main(_tiny(out, "--epochs", "2", "--checkpoint-every", "3")) == 0  # how often to save is not a setting
    assert "already finished" in capsys.readouterr().out                    # of the result: like --device
    assert main(_tiny(out, "--epochs", "1", "--seed", "5", "--restart")) == 0
    run = otviz.load_run(out)
    assert run.config.seed == 5 and len(run.history) == 1 and run.status["status"] == "done"
    # --resume of a directory without a run
    assert main(_tiny(tmp_path / "empty", "--resume")) == 2
    _one_error_line(capsys, "no run to resume")


HEAVY = ("torch", "xarray", "numpy", "panel", "holoviews", "dask", "pythia8mc")
_PROBE = ("import sys; from otviz.cli import main; rc = main(sys.argv[1:]); "
          "print('LOADED', *sorted(m for m in {heavy} if m in sys.modules), file=sys.stderr); sys.exit(rc)")


def _cli(*args, cwd=ROOT):
    proc = subprocess.run([sys.executable, "-c", _PROBE.format(heavy=HEAVY), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)
    loaded = [ln for ln in proc.stderr.splitlines() if ln.startswith("LOADED")][-1].split()[1:]
    return proc, loaded


def test_help_version_and_argument_errors_import_no_heavy_library():
    from importlib.metadata import version

    from otviz.cli import build_parser

    proc, loaded = _cli("--help")
    assert proc.returncode == 0 and loaded == [], loaded  # so that --help answers in well under 1 s
    commands = build_parser()._subparsers._group_actions[0].choices
    assert {"generate", "train", "evaluate", "dimension", "info", "data"} <= set(commands)
    listed = proc.stdout.split("commands:", 1)[1]
    for name, sub in commands.items():  # every command, with its one-line description
        assert f"    {name} " in listed and sub.description.split()[0] in listed, name
    proc, loaded = _cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"otviz {version('otviz')}" and loaded == []
    proc, loaded = _cli("train", "otus-zee", "--out", "r", "--epochs", "1.5")
    assert proc.returncode == 2 and loaded == []
    assert proc.stderr.splitlines()[0] == "otviz train: --epochs 1.5: not a whole number (otviz train --help)"


def test_each_help_shows_the_defaults_the_commands_use(capsys):
    from otviz.train.annealing import emdvae_wjets_config
    from otviz.train.config import PRESETS

    otus, vae = PRESETS["otus-zee"](epochs=90, finetune_epochs=0), emdvae_wjets_config(True)
    helps = {}
    for cmd in ("generate", "train", "evaluate", "dimension", "info", "data", "data fetch", "data regenerate"):
        assert main([*cmd.split(), "--help"]) == 0
        helps[cmd] = " ".join(capsys.readouterr().out.split())
    assert "--workers WORKERS LocalCluster worker processes (default: 2)" in helps["generate"]
    assert "--seed SEED random seed (chunk k is seeded from seed and k) (default: 1)" in helps["generate"]
    assert "--n-projections N_PROJECTIONS random directions of the sliced Wasserstein distance (default: 1000)" \
        in helps["evaluate"]
    assert "(pairs ~ n²/2) (default: 1000)" in helps["dimension"] and "--workers" not in helps["dimension"]
    t = helps["train"]
    assert f"random seed (default {otus.seed})" in t and otus.seed == vae.seed
    assert f"default {otus.batch_size} (otus-zee), {vae.batch_size} (emdvae-wjets)" in t
    assert f"(default {otus.n_projections})" in t and f"(default {otus.checkpoint_every})" in t
    assert f"epochs per β step at most (default {vae.max_epochs})" in t
    assert f"(default {vae.steps_per_epoch})" in t and f"(default {vae.lr:g})" in t
    assert "--from DIR an otviz checkout" in helps["data fetch"]
    finetune = inspect.signature(otus_zee_config).parameters["finetune_epochs"].default
    tt_finetune = inspect.signature(otus_ttbar_config).parameters["finetune_epochs"].default
    assert (f"epochs at the end (default {finetune}; otus-ttbar {tt_finetune}: the shipped runs'; 0: none)" in t
            and (finetune, tt_finetune) == (20, 10))


def test_otus_default_is_the_shipped_recipe_and_finetune_0_stays_possible(tmp_path, capsys):
    """``otviz train otus-zee`` with no setting flag trains the shipped run's recipe (90 epochs +
    20 of decoder fine-tuning): into a copy of the shipped run it finds that run finished."""
    shipped = TrainConfig.from_json((PRETRAINED / "otus-zee" / "config.json").read_text())
    assert otus_zee_config().stages == shipped.stages
    assert [(s.name, s.epochs, s.train) for s in otus_zee_config().stages][-1] == ("decoder-finetune", 20, "decoder")
    assert [s.name for s in otus_zee_config(finetune_epochs=0).stages] == ["anchor", "main"]
    copy = tmp_path / "otus-zee"
    shutil.copytree(PRETRAINED / "otus-zee", copy)
    before = _hashes(copy)
    assert main(["train", "otus-zee", "--out", str(copy), "--quiet"]) == 0
    assert f"{copy}: already finished (110 epochs); nothing to do" in capsys.readouterr().out
    assert main(["train", "otus-zee", "--out", str(copy), "--finetune-epochs", "0"]) == 2
    _one_error_line(capsys, "stages: [anchor 8, main 82, decoder-finetune 20] → [anchor 8, main 82]")
    assert _hashes(copy) == before


def test_dimension_workers_is_refused_with_the_reason(capsys):
    assert main(["dimension", str(PRETRAINED / "emdvae-wjets-centred"), "--workers", "4"]) == 2
    assert _one_error_line(capsys) == ("otviz dimension: --workers: no such option any more: the pairwise exact "
                                       "EMDs run in one thread (POT's solver holds the GIL, so threads made them "
                                       "slower)")


def _bad_config(folder: Path, shipped: str, edit) -> Path:
    folder.mkdir()
    d = json.loads((PRETRAINED / shipped / "config.json").read_text())
    edit(d)
    (folder / "config.json").write_text(json.dumps(d))
    return folder / "config.json"


def test_config_json_errors_name_the_file_and_the_json_field(tmp_path, capsys):
    cases = [
        ("otus-zee", lambda d: d.update(batch_size=0), "batch_size = 0: allowed 1 … 10000000"),
        ("otus-zee", lambda d: d["stages"][1].update(lr=5), "stages[1].lr = 5: allowed [1e-08, 1]"),
        ("otus-zee", lambda d: d.update(device="gpu"), 'device = "gpu": must be auto, cpu, cuda or cuda:N'),
        ("otus-zee", lambda d: d.update(bogus=1, extra=2), "unknown fields bogus, extra"),
        ("emdvae-wjets", lambda d: d["model_config"].update(latent=0), "model_config.latent = 0: allowed 1 … 256"),
        ("emdvae-wjets", lambda d: d.update(max_epochs=-1), "max_epochs = -1: allowed 1 … 200"),
    ]
    for i, (shipped, edit, reason) in enumerate(cases):
        cfg = _bad_config(tmp_path / f"r{i}", shipped, edit)
        text = cfg.read_text()
        assert main(["train", shipped, "--out", str(cfg.parent), "--resume"]) == 2
        assert _one_error_line(capsys) == f"otviz train: {cfg}: {reason}; cannot resume this run"
        command = "evaluate" if shipped == "otus-zee" else "dimension"
        assert main([command, str(cfg.parent)]) == 2
        assert _one_error_line(capsys) == f"otviz {command}: {cfg}: {reason}"
        assert sorted(p.name for p in cfg.parent.iterdir()) == ["config.json"] and cfg.read_text() == text
    cfg.write_text('{"batch_size": ')
    assert main(["train", "emdvae-wjets", "--out", str(cfg.parent), "--resume"]) == 2
    assert _one_error_line(capsys) == (f"otviz train: {cfg}: not valid JSON: Expecting value: line 1 column 16 "
                                       "(char 15); cannot resume this run")


def test_info_lists_every_variable_with_units_and_the_generator_attributes(capsys):
    import xarray as xr

    from otviz.cli import INFO_WIDTH

    assert main(["info", WJETS]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:5] == [
        f"{WJETS}: process=wjets events=30000 (valid)",
        "  z(event, z_particle, component) = (30000, 2, 4) float32 [GeV]: parton-level four-vectors of the hard "
        "process (q, q~)",
        "  x(event, constituent, feature) = (30000, 50, 3) float32 [pt: GeV, eta, phi: rad]: jet constituents: one "
        "weighted point cloud per jet (weight pt, position eta, phi; zero-padded)",
        "  jet(event, jet_feature) = (30000, 4) float32 [pt: GeV, eta, phi: rad, m: GeV]: the W jet's pt, eta, phi "
        "and mass",
        "  attributes:"]
    with xr.open_dataset(WJETS, engine="h5netcdf") as ds:
        attrs = dict(ds.attrs)
    listed = dict(ln.strip().split(": ", 1) for ln in lines[5:])
    assert list(listed) == list(attrs)  # every generator attribute, in the file's order
    assert listed["command"] == attrs["command"] and listed["seed"] == "5" and listed["fast"] == "1"
    seeds = attrs["pythia_chunk_seeds"]
    assert len(seeds) > INFO_WIDTH
    assert listed["pythia_chunk_seeds"] == f"{seeds[:INFO_WIDTH]}… ({len(seeds)} characters)"
    for path, names in [(ZEE_TEST, ["z", "x"]), (str(DATA / "ttbar_test.nc"), ["z", "x"])]:
        assert main(["info", path]) == 0
        out = capsys.readouterr().out
        assert [ln.split("(")[0].strip() for ln in out.splitlines()[1:3]] == names
    assert "  x(event, x_particle, component) = (25000, 6, 4) float32 [GeV]: detector-level four-vectors " \
           "(e-, MET, jet1, jet2, jet3, jet4)" in out


def test_shipped_sample_commands_are_the_recorded_ones():
    import h5py

    from otviz.data.shipped import SAMPLES

    for s in SAMPLES:
        with h5py.File(DATA / s.name) as f:
            assert f.attrs["command"] == s.command(), s.name
            assert f["x"].shape[0] == s.events and int(f.attrs["seed"][0]) == s.seed
    assert "data regenerate" in (DATA / "make_data.sh").read_text()


def test_data_fetch_fills_a_home_that_info_and_load_run_read(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OTVIZ_HOME", "")  # unset (empty), and restored after main() sets it
    home, elsewhere = tmp_path / "home", tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["data", "fetch", "--from", str(ROOT), "--data-dir", str(home)]) == 0
    assert f"{home / 'data'}: copied" in capsys.readouterr().out
    assert (home / "data" / "zee_test.nc").read_bytes() == (DATA / "zee_test.nc").read_bytes()
    shipped = {k: v for k, v in _hashes(PRETRAINED / "otus-zee").items() if not k.startswith("derived-")}
    assert _hashes(home / "data" / "pretrained" / "otus-zee") == shipped  # the dashboard's caches stay behind
    assert main(["data", "fetch", "--from", str(ROOT), "--data-dir", str(home)]) == 0  # already there
    assert "copied 0 files" in capsys.readouterr().out
    assert main(["info", "data/zee_test.nc", "--data-dir", str(home)]) == 0  # relative: under the home
    out = capsys.readouterr().out
    assert out.startswith("data/zee_test.nc: process=zee events=50000 (valid)")
    run = otviz.load_run("data/pretrained/otus-zee")  # OTVIZ_HOME was set by --data-dir
    assert run.path == home / "data" / "pretrained" / "otus-zee"
    assert len(run.history) == len(json.loads((PRETRAINED / "otus-zee" / "history.json").read_text()))
    assert main(["data", "regenerate", "--only", "nope.nc"]) == 2
    _one_error_line(capsys, "nope.nc: not a shipped sample", "zee_train.nc")


def test_dimension_prints_tables_with_gev_and_stores_what_it_prints(tmp_path, capsys):
    copy = tmp_path / "centred"
    shutil.copytree(PRETRAINED / "emdvae-wjets-centred", copy)
    assert main(["dimension", str(copy), "--jets", "60", "--force", "--quiet"]) == 0
    out = capsys.readouterr().out
    ds = otviz.load_run(copy).dimensionality
    ht = ds.attrs["ht_mean_GeV"]
    assert int(ds.attrs["n_jets_corr"]) == 60 and "(60 jets)" in out and "-0.00" not in out
    rows = [ln.split() for ln in out.splitlines() if ln.startswith("  ") and ln.split()[0][0].isdigit()]
    n_mid, n_beta, n_q = ds.sizes["beta_mid"], ds.sizes["beta"], ds.sizes["q_mid"]
    assert len(rows) == n_mid + n_beta + n_q
    d12, rate, dcorr = rows[:n_mid], rows[n_mid:n_mid + n_beta], rows[n_mid + n_beta:]
    for r, b, d1, d2 in zip(d12, ds.beta_mid.values, ds.D1.values, ds.D2.values):
        assert float(r[1]) == pytest.approx(b * ht, abs=0.06) and float(r[2]) == pytest.approx(d1, abs=0.006)
        assert float(r[3]) == pytest.approx(d2, abs=0.006)
    assert [float(r[2]) for r in rate] == pytest.approx(list(ds.rate.values), abs=0.006)
    for r, b, d in zip(dcorr, ds.beta_of_q.values, ds.D_corr.values):
        assert float(r[1]) == pytest.approx(b * ht, abs=0.06) and float(r[2]) == pytest.approx(d, abs=0.006)


def test_info_of_a_directory_a_missing_shipped_sample_and_a_sweep_file(tmp_path, capsys, monkeypatch):
    assert main(["info", str(DATA)]) == 2
    assert _one_error_line(capsys) == f"otviz info: {DATA} is a directory; give a sample file (.nc)"
    monkeypatch.setenv("OTVIZ_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert main(["info", "data/zee_test.nc"]) == 2
    line = _one_error_line(capsys, "otviz info: data/zee_test.nc: no such file",
                           "`otviz data fetch", "`otviz data regenerate`")
    assert line.endswith(f"into OTVIZ_HOME ({tmp_path / 'home' / 'data'})")
    import xarray as xr

    sweep = xr.Dataset({"sw": (("lam", "comparison"), [[1.5, 2.5], [3.5, 4.5]], {"units": "GeV²"})},
                       coords={"lam": [1.0, 20.0], "comparison": ["a", "b"]},
                       attrs={"preset": "otus-zee", "swept": '{"lam": [1.0, 20.0]}', "n_runs": 2})
    sweep.to_netcdf(tmp_path / "sweep.nc", engine="h5netcdf")
    assert main(["info", str(tmp_path / "sweep.nc")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{tmp_path / 'sweep.nc'}: netCDF file, not an event sample (a sweep of otus-zee runs)"
    assert out[1] == "  dimensions: lam (2), comparison (2)"
    assert "    lam(lam): 1.0, 20.0" in out and "    sw(lam, comparison) float64 [GeV²]" in out
    assert "    n_runs: 2" in out


def test_info_attributes_are_rounded_cross_sections_in_pb_and_the_command_whole():
    from otviz.cli import format_attribute

    assert format_attribute("selection_efficiency", 0.24260538778045182) == "0.2426"
    assert format_attribute("sigma_gen_mb", 1.4785829253866099e-06) == "1479 pb"
    assert format_attribute("seed", 2) == "2"
    cmd = "otviz generate zee --events 50000 --seed 2 --workers 2 --out data/a_very_long_name_" + "x" * 80 + ".nc --force"
    assert format_attribute("command", cmd) == cmd
    assert format_attribute("versions", "y" * 150) == "y" * 100 + "… (150 characters)"


def test_runs_with_a_missing_data_dir_is_an_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OTVIZ_HOME", "")  # unset (empty), and restored after main() sets it
    assert main(["runs", "--data-dir", str(tmp_path / "nonexistent")]) == 2
    assert _one_error_line(capsys) == f"otviz runs: --data-dir {tmp_path / 'nonexistent'}: no such directory"


def test_argparse_errors_have_the_command_prefix_and_say_the_value(capsys):
    assert main(["train", "otus-zee", "--out", "r", "--epochs", "abc"]) == 2
    assert _one_error_line(capsys) == "otviz train: --epochs abc: not a whole number (otviz train --help)"
    assert main(["sweep", "otus-zee", "--out", "r", "--seed", "x"]) == 2
    assert _one_error_line(capsys) == "otviz sweep: --seed x: not an integer (otviz sweep --help)"
    assert main(["train", "otus-zee", "--out", "r", "--betas", "3"]) == 2
    assert _one_error_line(capsys) == "otviz train: --betas: not an option of otviz train otus-zee"


def test_broken_config_json_gives_the_same_message_in_train_and_evaluate(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"epochs": 1,')
    lines = []
    for args in (["evaluate", str(run)], ["train", "otus-zee", "--out", str(run), "--resume"]):
        assert main(args) == 2
        lines.append(_one_error_line(capsys).split(": ", 1)[1])
    assert lines[0].startswith(f"{run / 'config.json'}: not valid JSON: ") and lines[1].startswith(lines[0])


def test_help_texts(capsys):
    from otviz.cli import build_parser

    p = build_parser()
    assert "``" not in p.epilog and "otviz COMMAND: …" in p.epilog and "143" in p.epilog
    subs = p._subparsers._group_actions[0].choices
    helps = {a.dest: a.help for a in subs["sweep"]._actions}
    assert helps["batch_size"] and helps["seed"]
    assert {a.dest: a.help for a in subs["info"]._actions}["path"].startswith("a sample file")
    assert "otus-ttbar, turbosim-ttbar data/ttbar_train.nc" in {a.dest: a.help for a in subs["train"]._actions}["data"]


def test_otus_train_states_its_schedule_warns_on_few_events_and_resume_names_the_epoch(tmp_path, capsys):
    out = tmp_path / "r"
    args = ["train", "otus-zee", "--data", ZEE, "--test", ZEE_TEST, "--out", str(out), "--epochs", "2",
            "--finetune-epochs", "1", "--max-events", "200", "--batch-size", "500", "--n-projections", "10",
            "--device", "cpu", "--quiet"]
    assert main(args) == 0
    cap = capsys.readouterr()
    assert cap.out.splitlines()[0] == ("schedule: 2 epochs + 1 decoder fine-tune epoch = 3 "
                                       "(--finetune-epochs 0 for none)")
    assert ("otviz train: warning: --max-events 200 is below the batch size 500: each epoch is one batch "
            "of 200 events") in cap.err
    from otviz.cli import schedule_line

    assert schedule_line(otus_zee_config(epochs=1, finetune_epochs=0)) == "schedule: 1 epoch, no decoder fine-tune"
    assert schedule_line(otus_zee_config(epochs=1)) == ("schedule: 1 epoch + 20 decoder fine-tune epochs = 21 "
                                                        "(--finetune-epochs 0 for none)")


def test_info_of_cluster_files_netcdf_and_herwig(tmp_path, capsys):
    from otviz.data.clusterset import load_clusters
    from otviz.data.herwig import write_herwig_clusters
    from otviz.paths import DATA

    shipped = DATA / "clusters" / "zqq_clusters.nc"
    assert main(["info", str(shipped)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("events=5000 clusters=41602 (valid)")
    assert "clusters per event: 8.32" in out[1] and out[2].startswith("  cluster mass [GeV]: 5% ")
    assert "made by fission" in out[3] and "GeV" in out[4] and "π⁰" in out[5]
    dat = write_herwig_clusters(load_clusters(shipped).isel(cluster=slice(0, 30)), tmp_path / "c.dat")
    assert main(["info", str(dat)]) == 0
    out = capsys.readouterr().out
    assert "cluster file (herwig)" in out and "max |cluster − hadron₀ − hadron₁|" in out
