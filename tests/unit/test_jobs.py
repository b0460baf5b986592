"""Jobs: one per target, and stopping every process a job started (no LXD needed)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from dpl_web import jobs
from dpl_web.registry import Registry


@pytest.fixture
def registry_path(tmp_path):
    path = tmp_path / "registry.sqlite3"
    with Registry.open(path) as reg:
        reg.ensure_host("local")
    return path


def test_a_second_job_for_the_same_target_is_refused(registry_path, tmp_path):
    with Registry.open(registry_path) as reg:
        running = reg.create_job("deploy", "app/shop/web", "alice")
        reg.start_job(running)
    runner = jobs.JobRunner(registry_path, jobs_dir=tmp_path / "jobs")
    with pytest.raises(jobs.JobRefused, match=f"job {running} \\(deploy of app/shop/web\\) is still running"):
        runner.submit("rollback", "app/shop/web", "playbooks/rollback.yml")
    with Registry.open(registry_path) as reg:
        assert [job["id"] for job in reg.list_jobs()] == [running]  # nothing recorded for the refused one


def test_a_job_whose_process_died_stops_blocking_its_target(registry_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    with Registry.open(registry_path) as reg:
        orphan = reg.create_job("deploy", "app/shop/web", "alice", owner=f"{jobs.socket.gethostname()}:{dead.pid}")
        reg.start_job(orphan, owner=f"{jobs.socket.gethostname()}:{dead.pid}")
        alive = reg.create_job("deploy", "app/shop/api", "bob", owner=jobs.owner_id())
        assert reg.fail_orphaned_jobs(jobs.owner_alive) == [orphan]
        assert reg.get_job(orphan)["status"] == "failed"
        assert reg.get_job(alive)["status"] == "queued"


def test_stopping_a_job_reaches_processes_in_other_sessions(tmp_path):
    """ansible-core's workers call setsid(): only the job's marker finds them all."""
    env = dict(os.environ, DPL_JOB_ID="424242")
    # A process in a session of its own that ignores SIGTERM, like a stubborn worker.
    stubborn = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                                 "signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"],
                                env=env, start_new_session=True, stdout=subprocess.PIPE)
    assert stubborn.stdout.readline() == b"ready\n"  # its handler is in place
    polite = subprocess.Popen(["sleep", "60"], env=env, start_new_session=True)
    other = subprocess.Popen(["sleep", "60"], env=dict(os.environ, DPL_JOB_ID="4242420"))
    try:
        deadline = time.monotonic() + 5
        while len(jobs.job_processes(424242)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert set(jobs.job_processes(424242)) == {stubborn.pid, polite.pid}
        jobs.stop_job_processes(424242, grace=0.5)
        assert stubborn.wait(timeout=5) == -9 and polite.wait(timeout=5) == -15
        assert other.poll() is None, "another job's process must be left alone"
    finally:
        for process in (stubborn, polite, other):
            process.kill()
            process.wait()
        stubborn.stdout.close()
