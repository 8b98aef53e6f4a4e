"""otviz.background: a process that exits while a run trains stops it cleanly (no C++ abort)."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

from otviz.train import TrainingRun, otus_zee_config

ROOT = Path(__file__).resolve().parents[1]
TRAIN = str(ROOT / "data" / "zee_train.nc")
TEST = str(ROOT / "data" / "zee_test.nc")


def config():
    return otus_zee_config(epochs=3, train_data=TRAIN, test_data=TEST, max_events=4000, batch_size=500,
                           n_projections=100, checkpoint_every=1, seed=3, finetune_epochs=0)


def _python(code: str, **env):
    import os

    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, **env))


def test_exit_while_training_cancels_the_run_which_then_resumes(tmp_path):
    """Before otviz.background the daemon training thread was killed inside torch at exit:
    "terminate called without an active exception", exit status 134."""
    rundir = tmp_path / "run"
    out = _python(f"""
        import time
        from otviz.train import TrainingRun, otus_zee_config
        cfg = otus_zee_config(epochs=3, train_data={TRAIN!r}, test_data={TEST!r}, max_events=4000, batch_size=500,
                              n_projections=100, checkpoint_every=1, seed=3, finetune_epochs=0)
        run = TrainingRun({str(rundir)!r}, cfg).start()
        while not any(e["type"] == "step" for e in run.events_since(0)):
            time.sleep(0.05)
        print("leaving with the run", run.status, flush=True)
        """)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "leaving with the run running" in out.stdout
    assert "terminate called" not in out.stderr
    assert "otviz: stopping before exit: otviz-train-run" in out.stderr  # one line, heartbeat not named
    status = json.loads((rundir / "status.json").read_text())
    assert status["status"] == "cancelled"
    assert status["message"] == "cancelled: the process exited (start it again to resume)"
    assert not (rundir / "model.pt").exists()
    # the cancelled run resumes to the end with the same settings
    run = TrainingRun(rundir, config())
    assert run.run_blocking() == "done"
    assert [r["epoch"] for r in run.history] == [0, 1, 2]


def test_a_thread_that_ignores_its_stop_is_named_and_the_wait_is_bounded():
    out = _python("""
        import threading, time
        from otviz.background import start_thread, stop_all
        never = threading.Event()
        stopped = threading.Event()
        start_thread(never.wait, name="stubborn")
        start_thread(stopped.wait, name="polite", on_exit=stopped.set)
        t0 = time.monotonic()
        left = stop_all()
        print(left, round(time.monotonic() - t0, 1), stopped.is_set(), flush=True)
        """, OTVIZ_EXIT_WAIT_S="0.5")
    assert out.returncode == 0, out.stderr
    left, waited, polite = out.stdout.split("] ")[0] + "]", *out.stdout.split("] ")[1].split()
    assert left == "['stubborn']" and float(waited) < 2 and polite == "True"
    assert "otviz: still running after 0.5 s (OTVIZ_EXIT_WAIT_S): stubborn" in out.stderr
