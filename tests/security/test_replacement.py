"""Item 6: replacing an artifact is atomic and durable; a kill -9 at any step leaves a loadable artifact."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from attack_helpers import ServerProcess, cli_env

from fusionrec.artifacts import forget_user, load_artifact, save_artifact
from fusionrec.serving import catalog
from fusionrec.serving.state import ServingState

STEPS = ["written", "renamed", "moved-aside", "linked", "swapped", "cleaned"]

# Forget user u0 and save, with the process killed (SIGKILL, no cleanup) right after STEP.
KILL_AT = """
import os, signal, sys
import fusionrec.artifacts as A
path, step = sys.argv[1], sys.argv[2]
art = A.load_artifact(path)
def hook(name):
    if name == step:
        os.kill(os.getpid(), signal.SIGKILL)
A.crash_hook = hook
A.save_artifact(A.forget_user(art, "u0"), path)
print("finished without reaching", step)
"""

# Save over and over to PATH, alternating between two artifacts made from SOURCE, until killed.
SAVE_LOOP = """
import sys
import fusionrec.artifacts as A
source, path = sys.argv[1], sys.argv[2]
a = A.load_artifact(source)
b = A.forget_user(a, "u0")
print("ready", flush=True)
while True:
    for art in (a, b):
        A.save_artifact(art, path)
"""


def _leftovers(parent, name="model"):
    return sorted(
        p.name for p in parent.iterdir() if p.name.startswith(f".{name}.") and not p.name.endswith(".lock")
    )


@pytest.mark.parametrize("layout", [pytest.param("plain-dir", marks=pytest.mark.slow), "versioned"])
def test_kill_at_every_step_leaves_a_loadable_artifact(artifact_template, tmp_path, layout):
    work = tmp_path / "deploy"
    artifact = work / "model"
    shutil.copytree(artifact_template, artifact)
    n_users = len(load_artifact(artifact).user_ids)
    if layout == "versioned":
        save_artifact(load_artifact(artifact), artifact)  # the name becomes a link to a version directory
    pristine = tmp_path / "pristine"
    shutil.copytree(work, pristine, symlinks=True)
    killed_at = []
    for step in STEPS:
        shutil.rmtree(work)
        shutil.copytree(pristine, work, symlinks=True)
        res = subprocess.run(
            [sys.executable, "-c", KILL_AT, str(artifact), step],
            env=cli_env(),
            capture_output=True,
            timeout=120,
        )
        if step == "moved-aside" and layout == "versioned":
            assert res.returncode == 0  # only the first save over a plain directory moves it aside
            continue
        assert res.returncode == -signal.SIGKILL, res.stderr
        killed_at.append(step)
        after = load_artifact(artifact)  # recovers whatever the kill left
        users = len(after.user_ids)
        if STEPS.index(step) >= STEPS.index("swapped"):
            assert users == n_users - 1, step  # the swap is the commit point: after it the change is kept
        elif layout == "plain-dir" and step in ("moved-aside", "linked"):
            # the plain directory was moved aside and no link made yet: the newest complete version is
            # recovered (old or new, never a mix and never nothing)
            assert users in (n_users, n_users - 1), step
        else:
            assert users == n_users, step  # before the swap, the old artifact is intact
        assert os.path.islink(artifact) or layout == "plain-dir"
        # the next save cleans up what the killed writer left
        save_artifact(after, artifact)
        left = _leftovers(artifact.parent)
        assert len(left) == 1 and left[0].startswith(".model.v"), (step, left)
    assert len(killed_at) == (6 if layout == "plain-dir" else 5)


@pytest.mark.slow
def test_random_kill_9_of_a_writer_never_loses_the_artifact(artifact, artifact_template):
    n_users = len(load_artifact(artifact).user_ids)
    for delay in (0.15, 0.4, 0.8):
        proc = subprocess.Popen(
            [sys.executable, "-c", SAVE_LOOP, str(artifact_template), str(artifact)],
            env=cli_env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert len(load_artifact(artifact).user_ids) in (n_users, n_users - 1)


def test_stale_temp_dirs_of_dead_writers_are_removed(artifact):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    save_artifact(load_artifact(artifact), artifact)
    stale = artifact.parent / f".model.tmp-{dead.pid}-x1y2"
    stale.mkdir()
    (stale / "model.json").write_text("{}")
    os.symlink(".model.v000001", artifact.parent / f".model.link-{dead.pid}-abcd")
    (artifact.parent / ".model.old").mkdir()  # what the previous format left after a crash
    save_artifact(load_artifact(artifact), artifact)
    assert _leftovers(artifact.parent) == [".model.v000003"]


def test_operator_symlink_deployment_is_swapped_and_keeps_working(artifact_template, tmp_path):
    # writing through `current -> v7` used to persist the change, answer 503 and fail every later write
    v7 = tmp_path / "v7"
    shutil.copytree(artifact_template, v7)
    current = tmp_path / "current"
    os.symlink("v7", current)
    n_users = len(load_artifact(v7).user_ids)
    with ServerProcess(current) as srv, srv.client() as c:
        for u in ("u0", "u1", "u2"):
            r = c.delete(f"/users/{u}")
            assert r.status_code == 200, r.text
        assert c.get("/healthz").json()["users"] == n_users - 3
    assert len(load_artifact(current).user_ids) == n_users - 3
    assert len(load_artifact(v7).user_ids) == n_users  # the operator's own directory is left alone
    assert os.readlink(current).startswith(".current.v")


def test_serving_state_survives_a_crash_between_swap_and_cleanup(artifact, monkeypatch):
    import fusionrec.artifacts as A

    state = ServingState(artifact, index="exact")
    n_users = state.current().n_users

    class Crash(Exception):
        pass

    def hook(step):
        if step == "swapped":
            raise Crash

    monkeypatch.setattr(A, "crash_hook", hook)
    with pytest.raises(Crash):
        catalog.forget_user(state, "u0")
    monkeypatch.setattr(A, "crash_hook", None)
    fresh = ServingState(artifact, index="exact")  # a restart reads the swapped-in version
    assert fresh.current().n_users == n_users - 1
    assert catalog.forget_user(fresh, "u1")["users"] == n_users - 2
    assert len(forget_user(load_artifact(artifact), "u2").user_ids) == n_users - 3
