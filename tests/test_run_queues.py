"""docs/results/table6-64k/run_queues.sh, the script that trains issue 19's runs in two queues
across sessions, run against a fake ``recipes.cifar10`` that trains instantly or holds on until
released, so that each behaviour is checked in seconds."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "results" / "table6-64k" / "run_queues.sh"
ISSUE_RUNS = ("resnet110-seed0", "resnet56-seed0", "resnet56-decayall-seed0", "plain56-seed0", "plain20-seed0",
              "resnet20-seed1")  # The runs finish.sh needs; the others come after them.
LATER_RUNS = ("resnet20-decayall-seed0", "resnet110-decayall-seed0")
RUNS = ("resnet110-seed0", "resnet56-seed0", "resnet56-decayall-seed0", "plain56-seed0", "plain20-seed0",
        "resnet20-seed1", "resnet20-decayall-seed0", "resnet110-decayall-seed0")

pytestmark = pytest.mark.skipif(
    not (shutil.which("flock") and shutil.which("taskset") and len(os.sched_getaffinity(0)) >= 2
         and {0, 1} <= os.sched_getaffinity(0)),
    reason="needs flock, taskset and cores 0 and 1")

# Records its CPU affinity in CTRL/cores-<run>, then trains at once (records "<run> <cwd>" in CTRL/trained
# and writes stats.json) unless CTRL/hold or CTRL/hold-<run> exists when it starts: then it records
# CTRL/running-<run> and waits for CTRL/release or CTRL/release-<run>, then exits 1 (interrupted), or trains
# if CTRL/complete or CTRL/complete-<run> exists by then.
# A finished run (stats.json there) returns at once, as the real recipe does.
FAKE_RECIPE = '''
import os, sys, time
ctrl = os.environ["FAKE_CTRL"]
model_dir = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--model_dir=")][0]
name = os.path.basename(model_dir)
if os.path.exists(os.path.join(model_dir, "stats.json")):
    sys.exit(0)
with open(os.path.join(ctrl, "cores-" + name), "w") as f:
    f.write(",".join(str(c) for c in sorted(os.sched_getaffinity(0))))
if os.path.exists(os.path.join(ctrl, "hold")) or os.path.exists(os.path.join(ctrl, "hold-" + name)):
    open(os.path.join(ctrl, "running-" + name), "w").close()
    while not any(os.path.exists(os.path.join(ctrl, f)) for f in ("release", "release-" + name)):
        time.sleep(0.05)
    if not any(os.path.exists(os.path.join(ctrl, f)) for f in ("complete", "complete-" + name)):
        sys.exit(1)
os.makedirs(model_dir, exist_ok=True)
with open(os.path.join(ctrl, "trained"), "a") as f:
    f.write(name + " " + os.getcwd() + "\\n")
open(os.path.join(model_dir, "stats.json"), "w").close()
'''


def _checkout(path: Path) -> Path:
    (path / "recipes").mkdir(parents=True)
    (path / "recipes" / "__init__.py").write_text("")
    (path / "recipes" / "cifar10.py").write_text(FAKE_RECIPE)
    return path


@pytest.fixture
def env(tmp_path):
    ctrl = tmp_path / "ctrl"
    ctrl.mkdir()
    return {**os.environ, "CODE": str(_checkout(tmp_path / "code")), "NEW_CODE": str(_checkout(tmp_path / "new")),
            "DATA": str(tmp_path / "data"), "RUNS": str(tmp_path / "runs"), "SAVED": str(tmp_path / "saved"),
            "PY": sys.executable, "FAKE_CTRL": str(ctrl)}


def _start(env: dict) -> subprocess.Popen:
    return subprocess.Popen(["bash", str(SCRIPT)], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_for(predicate, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def _cores(env: dict, name: str) -> str:
    return (Path(env["FAKE_CTRL"]) / f"cores-{name}").read_text()


def _finished(env: dict, names) -> None:
    for name in names:
        (Path(env["RUNS"]) / name).mkdir(parents=True)
        (Path(env["RUNS"]) / name / "stats.json").touch()


def _trained(env: dict) -> list[tuple[str, str]]:
    path = Path(env["FAKE_CTRL"]) / "trained"
    return [tuple(line.split()) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def started():
    processes = []
    yield processes
    for process in processes:  # Only this test's own process groups.
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_every_run_is_trained_once_by_one_of_the_two_queues(env, started):
    started.append(_start(env))
    assert started[0].wait(timeout=120) == 0
    names = [name for name, _ in _trained(env)]
    assert sorted(names) == sorted(RUNS)


def test_only_the_runs_that_need_a_later_checkout_run_from_new_code(env, started):
    started.append(_start(env))
    assert started[0].wait(timeout=120) == 0
    where = dict(_trained(env))
    assert where.pop("resnet56-decayall-seed0") == env["NEW_CODE"]
    assert where.pop("resnet20-decayall-seed0") == env["NEW_CODE"]
    assert where.pop("resnet110-decayall-seed0") == env["NEW_CODE"]
    assert set(where.values()) == {env["CODE"]}


def test_a_rerun_while_the_last_queues_are_exiting_resumes_their_runs_instead_of_skipping_them(env, started):
    ctrl = Path(env["FAKE_CTRL"])
    (ctrl / "hold").touch()
    started.append(_start(env))  # The last session's queues, each in its first run.
    _wait_for(lambda: (ctrl / "running-resnet110-seed0").exists() and (ctrl / "running-resnet56-seed0").exists())
    (ctrl / "hold").unlink()
    started.append(_start(env))  # The rerun, while those two runs still hold their locks.
    time.sleep(1.0)
    (ctrl / "release").touch()  # Now they exit (interrupted), and so do their queues.
    assert started[0].wait(timeout=60) == 0
    assert started[1].wait(timeout=120) == 0
    names = [name for name, _ in _trained(env)]
    assert sorted(names) == sorted(RUNS)  # Skipping them would have left both untrained.


def test_a_run_missing_from_runs_is_restored_from_its_saved_copy_before_it_resumes(env, started):
    saved = Path(env["SAVED"]) / "resnet110-seed0" / "checkpoints"
    saved.mkdir(parents=True)
    (saved / "checkpoint").write_text('model_checkpoint_path: "ckpt-28005"\n')
    started.append(_start(env))
    assert started[0].wait(timeout=120) == 0
    restored = Path(env["RUNS"]) / "resnet110-seed0" / "checkpoints" / "checkpoint"
    assert restored.read_text() == (saved / "checkpoint").read_text()
    assert "resnet110-seed0 restored from" in (Path(env["RUNS"]) / "queue0.log").read_text()


def test_each_run_is_pinned_to_its_queues_core_while_other_runs_remain(env, started):
    started.append(_start(env))
    assert started[0].wait(timeout=120) == 0
    assert _cores(env, "resnet110-seed0") == "0"
    assert _cores(env, "resnet56-seed0") == "1"


def test_the_last_run_left_trains_on_both_cores(env, started):
    _finished(env, [name for name in RUNS if name != "plain56-seed0"])
    started.append(_start(env))
    assert started[0].wait(timeout=120) == 0
    assert [name for name, _ in _trained(env)] == ["plain56-seed0"]
    assert _cores(env, "plain56-seed0") == "0,1"


def test_the_last_unfinished_issue_run_trains_on_both_cores_before_the_later_runs(env, started):
    _finished(env, [name for name in ISSUE_RUNS if name != "plain56-seed0"])
    started.append(_start(env))
    assert started[0].wait(timeout=120) == 0
    assert _cores(env, "plain56-seed0") == "0,1"
    assert [name for name, _ in _trained(env)][0] == "plain56-seed0"
    assert sorted(name for name, _ in _trained(env)) == sorted(("plain56-seed0",) + LATER_RUNS)


def _queue_logs(env: dict) -> list[str]:
    logs = [Path(env["RUNS"]) / f"queue{core}.log" for core in (0, 1)]
    return [log.read_text() if log.exists() else "" for log in logs]


def _other_queue_waiting_for_plain56_on_both_cores(env: dict, started: list) -> Path:
    """Starts the queues with plain-56 the last unfinished issue run, held; returns the fake's control
    folder once the queue that does not train plain-56 logs that it waits for it."""
    ctrl = Path(env["FAKE_CTRL"])
    _finished(env, [name for name in ISSUE_RUNS if name != "plain56-seed0"])
    (ctrl / "hold-plain56-seed0").touch()
    started.append(_start(env))
    _wait_for(lambda: (ctrl / "running-plain56-seed0").exists())
    _wait_for(lambda: "waiting for plain56-seed0" in "".join(_queue_logs(env)))
    return ctrl


def test_later_runs_wait_for_an_issue_run_on_both_cores_then_both_queues_go_on(env, started):
    ctrl = _other_queue_waiting_for_plain56_on_both_cores(env, started)
    time.sleep(0.5)
    assert not any((ctrl / f"cores-{name}").exists() for name in LATER_RUNS)
    (ctrl / "complete").touch()
    (ctrl / "release").touch()  # plain-56 finishes.
    assert started[0].wait(timeout=60) == 0
    assert sorted(name for name, _ in _trained(env)) == sorted(("plain56-seed0",) + LATER_RUNS)
    for log in _queue_logs(env):  # The queue that waited trained a later run too.
        assert any(f"start {name} on" in log for name in LATER_RUNS), log


def test_later_runs_stay_unstarted_if_the_issue_run_on_both_cores_is_interrupted(env, started):
    ctrl = _other_queue_waiting_for_plain56_on_both_cores(env, started)
    (ctrl / "release").touch()  # plain-56 exits interrupted, as at the end of a session.
    assert started[0].wait(timeout=60) == 0
    assert _trained(env) == []
    assert "plain56-seed0 was interrupted" in "".join(_queue_logs(env))


def test_later_runs_do_not_wait_for_an_issue_run_pinned_to_the_other_core(env, started):
    ctrl = Path(env["FAKE_CTRL"])
    _finished(env, [name for name in ISSUE_RUNS if name not in ("plain56-seed0", "resnet20-seed1")])
    (ctrl / "hold-plain56-seed0").touch()  # Pinned: ResNet-20 seed 1 is unfinished when it starts.
    started.append(_start(env))
    _wait_for(lambda: any(name in LATER_RUNS for name, _ in _trained(env)))
    assert (ctrl / "running-plain56-seed0").exists() and not (ctrl / "release").exists()
    assert _cores(env, "plain56-seed0") in ("0", "1")
    (ctrl / "release").touch()
    assert started[0].wait(timeout=60) == 0


def test_the_issue_runs_are_the_runs_finish_sh_needs():
    import re
    queued = re.search(r'^ISSUE_RUNS="([^"]*)"', SCRIPT.read_text(), re.M).group(1).split()
    needed = re.search(r"^for name in ([^;]*); do", (SCRIPT.parent / "finish.sh").read_text(), re.M).group(1).split()
    assert sorted(queued) == sorted(needed) == sorted(ISSUE_RUNS)


def test_a_later_run_is_not_started_after_an_issue_run_was_interrupted_on_the_other_core(env, started):
    ctrl = Path(env["FAKE_CTRL"])
    _finished(env, [name for name in ISSUE_RUNS if name not in ("plain56-seed0", "resnet20-seed1")])
    (ctrl / "hold").touch()  # Both pinned, one per queue.
    started.append(_start(env))
    _wait_for(lambda: (ctrl / "running-plain56-seed0").exists() and (ctrl / "running-resnet20-seed1").exists())
    (ctrl / "release-plain56-seed0").touch()  # Interrupted: its queue stops.
    _wait_for(lambda: "plain56-seed0 exited 1" in "".join(_queue_logs(env)))
    (ctrl / "complete-resnet20-seed1").touch()
    (ctrl / "release-resnet20-seed1").touch()  # Finishes: its queue reaches the later runs.
    assert started[0].wait(timeout=60) == 0
    assert [name for name, _ in _trained(env)] == ["resnet20-seed1"]
    assert "plain56-seed0 was interrupted" in "".join(_queue_logs(env))
