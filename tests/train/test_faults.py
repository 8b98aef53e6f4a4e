"""What a kill leaves behind: SIGKILL at random moments and during checkpoint writes; every time
the run loads (history matching its weights), shows as interrupted, leaves no temporary file and
resumes, losing at most one checkpoint interval."""
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import otviz

ROOT = Path(__file__).resolve().parents[2]
TRAIN = str(ROOT / "data" / "zee_train.nc")
TEST = str(ROOT / "data" / "zee_test.nc")
EPOCHS, EVERY = 12, 2


def _env(slow: str | None = None):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("OTVIZ_TEST_SLOW_WRITE", None)
    if slow:
        env["OTVIZ_TEST_SLOW_WRITE"] = slow
    return env


def _otus_cmd(rundir):
    return [sys.executable, "-m", "otviz.cli", "train", "otus-zee", "--out", str(rundir), "--data", TRAIN,
            "--test", TEST, "--epochs", str(EPOCHS), "--max-events", "2000", "--batch-size", "500",
            "--n-projections", "50", "--checkpoint-every", str(EVERY), "--seed", "1", "--device", "cpu", "--quiet",
            "--finetune-epochs", "0"]


def _tmp_files(rundir: Path):
    return list(rundir.glob(".*.tmp")) + list((rundir / "steps").glob(".*.tmp"))


def _wait_for(proc, cond, timeout=180.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.02)
    raise AssertionError("timed out waiting for the training process")


def _status_pid(rundir: Path):
    try:
        return json.loads((rundir / "status.json").read_text()).get("pid")
    except (OSError, ValueError):
        return None


def _kill(proc):
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _check_after_kill(rundir: Path, every: int):
    """The invariants a SIGKILL must leave: returns the checkpoint's epoch."""
    on_disk = len(json.loads((rundir / "history.json").read_text()))  # epochs finished before the kill
    run = otviz.load_run(rundir)  # loads, and clears the killed writer's temporary files
    assert not _tmp_files(rundir)
    done = int(torch.load(rundir / "checkpoint.pt", weights_only=True)["epoch"])
    assert [h["epoch"] for h in run.history] == list(range(done))  # the history of the weights loaded
    assert on_disk - done <= every  # at most one checkpoint interval lost
    assert run.status["status"] == "interrupted"
    from otviz.train.run import run_status

    assert run_status(rundir)["status"] == "interrupted"
    return done


def test_sigkill_at_random_moments_and_during_checkpoint_writes(tmp_path):
    rundir = tmp_path / "otus"
    rng = random.Random(11)
    kills, seen_tmp = 0, False
    for round_ in range(4):
        # round 0 kills while a checkpoint's temporary file is being written (the test hook holds
        # it 0.8 s before the rename); the others at a random moment after the first checkpoint
        slow = "checkpoint.pt:0.8" if round_ == 0 else "checkpoint.pt:0.2"
        proc = subprocess.Popen(_otus_cmd(rundir), cwd=ROOT, env=_env(slow), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            ck = rundir / "checkpoint.pt"
            if round_ == 0:
                started = _wait_for(proc, lambda: ck.exists() and bool(list(rundir.glob(".checkpoint.pt.*.tmp"))))
                seen_tmp = started
            else:  # once this process trains (status.json names it), at a random moment
                started = _wait_for(proc, lambda: _status_pid(rundir) == proc.pid)
                time.sleep(rng.uniform(0.0, 2.0))
            if not started or proc.poll() is not None:
                break  # finished before the kill
            _kill(proc)
            kills += 1
        finally:
            if proc.poll() is None:
                _kill(proc)
        if round_ > 0:
            out = proc.stdout.read()
            assert "resuming the run" in out, out
        _check_after_kill(rundir, EVERY)
    assert seen_tmp and kills >= 2
    out = subprocess.run(_otus_cmd(rundir), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "resuming the run" in out.stdout
    run = otviz.load_run(rundir)
    assert run.status["status"] == "done" and [h["epoch"] for h in run.history] == list(range(EPOCHS))
    assert not _tmp_files(rundir)


def test_sigkill_of_an_annealing_run_during_a_checkpoint_write(tmp_path):
    rundir = tmp_path / "vae"
    cmd = [sys.executable, "-m", "otviz.cli", "train", "emdvae-wjets", "--out", str(rundir), "--data",
           str(ROOT / "data" / "wjets.nc"), "--max-events", "200", "--betas", "2", "--schedule", "production", "--max-epochs", "2",
           "--steps-per-epoch", "2", "--latent", "8", "--width", "32", "--device", "cpu", "--threads", "1", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env("checkpoint.pt:1.0"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        assert _wait_for(proc, lambda: (rundir / "checkpoint.pt").exists()
                         and bool(list(rundir.glob(".checkpoint.pt.*.tmp")))), "finished before the kill"
        _kill(proc)
    finally:
        if proc.poll() is None:
            _kill(proc)
    run = otviz.load_run(rundir)
    assert not _tmp_files(rundir)
    state = torch.load(rundir / "checkpoint.pt", weights_only=True)
    assert run.history == state["history"] and run.steps == state["steps_done"]
    assert run.status["status"] == "interrupted"
    from otviz.train.run import run_status

    assert run_status(rundir)["status"] == "interrupted"
    out = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    run = otviz.load_run(rundir)
    assert run.status["status"] == "done" and len(run.steps) == 2 and not _tmp_files(rundir)


def _write_status(rundir: Path, **st):
    rundir.mkdir(parents=True, exist_ok=True)
    (rundir / "status.json").write_text(json.dumps({"status": "running", "message": "", **st}))


def test_run_status_tells_a_gone_process_from_a_live_one(tmp_path):
    from otviz.train.run import run_status

    host = socket.gethostname()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _write_status(tmp_path / "a", pid=int(gone.stdout), host=host, heartbeat=time.time())
    st = run_status(tmp_path / "a")
    assert st["status"] == "interrupted" and st["recorded"] == "running" and "is gone" in st["message"]
    _write_status(tmp_path / "b", pid=os.getppid(), host=host, heartbeat=time.time() - 3600)
    assert run_status(tmp_path / "b")["status"] == "running"  # alive on this host: the pid decides
    _write_status(tmp_path / "c", pid=1, host="elsewhere.example", heartbeat=time.time() - 3600)
    assert run_status(tmp_path / "c")["status"] == "interrupted"  # another host: the heartbeat decides
    _write_status(tmp_path / "d", pid=1, host="elsewhere.example", heartbeat=time.time())
    assert run_status(tmp_path / "d")["status"] == "running"
    _write_status(tmp_path / "e", time=time.time() - 3600)  # written before pids were recorded
    assert run_status(tmp_path / "e")["status"] == "interrupted"
    assert run_status(tmp_path / "nothing")["status"] == "unknown"
    # a live run is never opened a second time (nor its temporary files removed)
    from otviz.errors import RunBusyError
    from otviz.train import TrainingRun, otus_zee_config

    (tmp_path / "b" / ".checkpoint.pt.x1.tmp").write_bytes(b"in flight")
    with pytest.raises(RunBusyError, match="training there"):
        TrainingRun(tmp_path / "b", otus_zee_config(epochs=1, train_data=TRAIN, test_data=TEST))
    assert (tmp_path / "b" / ".checkpoint.pt.x1.tmp").exists()


def test_sigterm_ends_a_cli_run_as_interrupted(tmp_path):
    """``kill`` / ``timeout`` send SIGTERM: the run records itself as interrupted (status.json, not
    only the PID check), the command exits 143 (128 + SIGTERM; Ctrl-C's SIGINT: 130), and the same
    command resumes it."""
    rundir = tmp_path / "term"
    proc = subprocess.Popen(_otus_cmd(rundir), cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert _wait_for(proc, lambda: (rundir / "checkpoint.pt").exists()), "finished before the signal"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "interrupted" in err and "Traceback" not in err, err
    st = json.loads((rundir / "status.json").read_text())
    assert st["status"] == "interrupted" and "KeyboardInterrupt" in st["message"]
    done = subprocess.run(_otus_cmd(rundir), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "resuming" in done.stdout and "from epoch " in done.stdout, done.stdout + done.stderr
    assert otviz.load_run(rundir).status["status"] == "done"
