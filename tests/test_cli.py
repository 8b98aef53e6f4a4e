"""The command line: one-line errors with exit status 2 (tracebacks only with --debug), a failed
training run in one line with status 1, quiet broken pipes, protected finished runs and the
--restart / --resume semantics of a run directory that holds a run."""
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import otviz
from otviz.cli import main

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
ZEE, ZEE_TEST, WJETS = str(DATA / "zee_train.nc"), str(DATA / "zee_test.nc"), str(DATA / "wjets.nc")
PRETRAINED = DATA / "pretrained"


def _one_error_line(capsys, *needles):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("otviz: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


OTUS = ["train", "otus-zee", "--data", ZEE, "--test", ZEE_TEST]
VAE = ["train", "emdvae-wjets", "--data", WJETS]


@pytest.mark.parametrize("args, needles", [
    (OTUS + ["--batch-size", "0"], ["batch_size", "--batch-size", "1 …"]),
    (OTUS + ["--checkpoint-every", "0"], ["checkpoint_every", "--checkpoint-every"]),
    (OTUS + ["--n-projections", "0"], ["n_projections", "1 … 10000"]),
    (OTUS + ["--epochs", "0"], ["epochs", "--epochs"]),
    (OTUS + ["--epochs", "-3"], ["epochs", "--epochs"]),
    (OTUS + ["--max-events", "-5"], ["max_events", "--max-events"]),
    (OTUS + ["--finetune-epochs", "-2"], ["finetune_epochs"]),
    (OTUS + ["--batch-size", "-10"], ["batch_size"]),
    (OTUS + ["--lr", "0.1"], ["--lr", "not an option of otviz train otus-zee"]),
    (["train", "otus-zee", "--data", WJETS], ["wjets.nc", "train_data", "e-"]),
    (VAE + ["--batch-size", "0"], ["batch_size", "--batch-size"]),
    (VAE + ["--lr", "1e9"], ["lr", "--lr", "[1e-08, 1]"]),
    (VAE + ["--betas", "0"], ["n_betas", "--betas"]),
    (VAE + ["--max-epochs", "0"], ["max_epochs", "--max-epochs"]),
    (VAE + ["--latent", "0"], ["latent", "--latent"]),
    (VAE + ["--latent", "257"], ["latent", "1 … 256"]),
    (VAE + ["--width", "4096"], ["width", "1 … 1024"]),
    (VAE + ["--beta-min", "-1"], ["beta_min", "--beta-min"]),
    (VAE + ["--betas", "20", "--schedule", "paper"], ["β steps", "1 … 40"]),
    (VAE + ["--epochs", "3"], ["--epochs", "not an option of otviz train emdvae-wjets"]),
    (["train", "emdvae-wjets", "--data", ZEE], ["zee_train.nc", "jet constituents"]),
    (OTUS + ["--restart", "--resume"], ["--restart and --resume"]),
])
def test_invalid_training_settings_are_one_line_and_write_nothing(tmp_path, capsys, args, needles):
    out = tmp_path / "run"
    assert main(args + ["--out", str(out)]) == 2
    _one_error_line(capsys, "otviz: error:", *needles)
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
        (["generate", "zee", "--events", "abc"], ["--events", "invalid count"]),
        (["generate", "zee", "--events", "10", "--detector", str(tmp_path / "none.json")], ["none.json"]),
    ]
    for args, needles in cases:
        assert main(args) == 2, args
        _one_error_line(capsys, "otviz: error:", *needles)
    for text, needles in [('{"jet_r": 0.4, "bogus": 1}', ["det.json", "unknown", "bogus"]),
                          ('{"jet_r": "wide"}', ["jet_r", "must be a number"]),
                          ('{"electron_efficiency": 1.5}', ["electron_efficiency", "[0, 1]"]),
                          ('{"jet_energy": {"a": 0.6}}', ["jet_energy"])]:
        bad_json.write_text(text)
        assert main(["generate", "zee", "--events", "10", "--detector", str(bad_json),
                     "--out", str(tmp_path / "d.nc")]) == 2
        _one_error_line(capsys, "otviz: error:", *needles)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.nc", "det.json", "notarun"]  # nothing written
    assert int(otviz.load_run(PRETRAINED / "emdvae-wjets-centred").dimensionality.attrs["n_jets_corr"]) == 1000


def test_debug_shows_the_traceback(tmp_path, capsys):
    assert main(["--debug", "info", str(tmp_path / "missing.nc")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("otviz: error:")
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
            "--batch-size", "500", "--n-projections", "20", "--device", "cpu", "--quiet", *extra]


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
    assert proc.stderr.splitlines()[0] == ("otviz: error: train: argument --epochs: invalid count '1.5' "
                                           "(not a whole number) (otviz train --help)")


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
    assert "(pairs ~ n²/2) (default: 1000)" in helps["dimension"]
    t = helps["train"]
    assert f"random seed (default {otus.seed})" in t and otus.seed == vae.seed
    assert f"default {otus.batch_size} (otus-zee), {vae.batch_size} (emdvae-wjets)" in t
    assert f"(default {otus.n_projections})" in t and f"(default {otus.checkpoint_every})" in t
    assert f"epochs per β step at most (default {vae.max_epochs})" in t
    assert f"(default {vae.steps_per_epoch})" in t and f"(default {vae.lr:g})" in t
    assert "--from DIR an otviz checkout" in helps["data fetch"]


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
    assert _hashes(home / "data" / "pretrained" / "otus-zee") == _hashes(PRETRAINED / "otus-zee")
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
