"""The job queue and the worker: waiting, coalescing, cancel from another process, a dead
worker's jobs, the event stream, and stopping every process a job started.

The worker runs for real (tests/support/worker.py: the real worker with a ``test-sleep``
kind whose playbook sleeps on localhost), in a process of its own, so that a test can
cancel from another process or kill it. No LXD needed.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dpl_web.errors import Conflict
from dpl_web.jobs import follow, process, worker
from dpl_web.jobs.run import JobRun
from dpl_web.registry import Registry

ROOT = Path(__file__).resolve().parents[2]
DPL = str(Path(sys.executable).parent / "dpl")


def ids(jobs):
    return [job["id"] for job in jobs]


def wait_for(condition, timeout=60.0, what="the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout} s")


# -- the queue (registry only) ---------------------------------------------------------


def test_jobs_of_one_target_run_in_order_and_an_app_waits_for_its_container(stocked):
    reg = stocked
    deploy_web = reg.create_job("deploy", "app/shop/web", "alice")
    stop_web1 = reg.create_job("container-stop", "container/web1", "bob")  # the container of shop/web
    deploy_site = reg.create_job("deploy", "app/blog/site", "carol")  # another container
    rollback_web = reg.create_job("rollback", "app/shop/web", "dave")
    # The stop waits for the deploy in its container; the rollback waits behind both.
    assert ids(reg.claim_jobs("w:1", slots=10)) == [deploy_web, deploy_site]
    assert reg.claim_jobs("w:1", slots=10) == []
    reg.finish_job(deploy_web, "successful")
    assert ids(reg.claim_jobs("w:1", slots=10)) == [stop_web1]
    reg.finish_job(stop_web1, "successful")
    assert ids(reg.claim_jobs("w:1", slots=10)) == [rollback_web]
    assert reg.get_job(rollback_web)["owner"] == "w:1"


def test_no_more_jobs_start_than_there_are_slots(stocked):
    reg = stocked
    first = reg.create_job("deploy", "app/shop/web", "alice")
    second = reg.create_job("deploy", "app/blog/site", "bob")
    assert ids(reg.claim_jobs("w:1", slots=1)) == [first]
    assert reg.claim_jobs("w:1", slots=0) == []
    assert ids(reg.claim_jobs("w:1", slots=1)) == [second]


def test_a_newer_deploy_replaces_the_queued_one_and_it_says_so(stocked):
    reg = stocked
    older, replaced = reg.queue_job("deploy", "app/shop/web", "alice", params={"app": "shop/web", "ref": "v1"},
                                    coalesce=True)
    assert replaced == []
    newer, replaced = reg.queue_job("deploy", "app/shop/web", "bob", params={"app": "shop/web", "ref": "v2"},
                                    coalesce=True)
    assert replaced == [older]
    gone = reg.get_job(older)
    assert (gone["status"], gone["replaced_by"]) == ("canceled", newer)
    assert f"replaced by job {newer}" in gone["summary"]
    assert reg.job_events(older)[-1] == {**reg.job_events(older)[-1], "type": "finished", "status": "canceled",
                                         "replaced_by": newer}
    # The newest request wins; a deploy that already runs is not replaced, nor another kind.
    assert ids(reg.claim_jobs("w:1", slots=5)) == [newer]
    rollback = reg.queue_job("rollback", "app/shop/web", "carol", coalesce=False)[0]
    latest, replaced = reg.queue_job("deploy", "app/shop/web", "dave", coalesce=True)
    assert replaced == []
    assert reg.get_job(newer)["status"] == "running" and reg.get_job(rollback)["status"] == "queued"
    assert reg.get_job(latest)["params"] == {}


def test_cancel_ends_a_queued_job_at_once_and_flags_a_running_one(stocked):
    reg = stocked
    running = reg.create_job("deploy", "app/shop/web", "alice")
    queued = reg.create_job("deploy", "app/blog/site", "bob")
    reg.claim_jobs("w:1", slots=1)
    assert reg.request_cancel(queued, who="carol")["status"] == "canceled"
    assert "canceled by carol before it started" in reg.get_job(queued)["summary"]
    flagged = reg.request_cancel(running, who="carol")
    assert (flagged["status"], flagged["cancel_requested"]) == ("running", True)
    assert reg.canceled_jobs([running, queued]) == {running}
    with pytest.raises(Conflict, match="already finished"):
        reg.request_cancel(queued)


def test_events_are_numbered_per_job_and_read_from_any_point(stocked):
    reg = stocked
    job = reg.create_job("deploy", "app/shop/web", "alice")
    other = reg.create_job("deploy", "app/blog/site", "bob")
    for number in range(3):
        reg.add_job_event(job, "note", {"msg": f"step {number}"})
    events = reg.job_events(job)
    assert [(e["seq"], e["type"]) for e in events] == [(1, "queued"), (2, "note"), (3, "note"), (4, "note")]
    assert [e["msg"] for e in reg.job_events(job, after=2)] == ["step 1", "step 2"]
    assert [e["seq"] for e in reg.job_events(other)] == [1]
    reg.finish_job(job, "successful", summary="done")
    assert reg.job_events(job, after=4) == [{**reg.job_events(job, after=4)[0], "type": "finished",
                                             "status": "successful", "summary": "done"}]


def test_a_modules_own_status_never_hides_a_failure(stocked, registry_path, tmp_path):
    """The container module returns its LXD status as "status": the task's outcome stays "status"."""
    job = stocked.get_job(stocked.create_job("container-stop", "container/web1", "tester"))
    run = JobRun(job, registry_path, tmp_path / "jobs", threading.Event())
    try:
        run._on_ansible_event({"event": "runner_on_failed", "event_data": {
            "host": "web1", "task": "Stop it", "resolved_action": "dpl.platform.container",
            "res": {"status": "Running", "msg": "LXD could not stop it", "changed": False}}})
    finally:
        run.close()
    assert (run.results[0]["status"], run.results[0]["reported_status"]) == ("failed", "Running")
    assert run.summary("failed") == "Stop it on web1: LXD could not stop it"
    stored = stocked.job_events(job["id"])[-1]
    assert (stored["type"], stored["status"], stored["reported_status"]) == ("result", "failed", "Running")


# -- the worker (a real one, in its own process) -------------------------------------------


def start_worker(registry_path, slots=2, idle_exit=60.0, poll=0.1) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.support.worker", str(registry_path), str(slots),
                             str(idle_exit), str(poll)], cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def sleeper(reg, target="app/shop/web", seconds=60) -> int:
    return reg.create_job("test-sleep", target, "tester", params={"seconds": seconds})


def job_status(registry_path, job_id) -> str:
    with Registry.open(registry_path) as reg:
        return reg.get_job(job_id)["status"]


def sleeping(registry_path, job_id) -> list[int]:
    """The `sleep` processes of a running job."""
    found = []
    for pid in process.job_processes(process.job_marker(registry_path, job_id)):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "sleep":
                found.append(pid)
        except OSError:
            pass  # it ended meanwhile
    return found


@pytest.fixture
def worker_process(registry_path, stocked):
    started = []

    def start(**kwargs):
        started.append(start_worker(registry_path, **kwargs))
        return started[-1]

    yield start
    for proc in started:
        proc.kill()
        proc.wait()
        proc.stderr.close()


def test_the_worker_runs_a_job_and_anyone_follows_its_events(registry_path, stocked, worker_process):
    job = sleeper(stocked, seconds=0)
    worker_process()
    done = follow.follow(registry_path, job, keep_worker=False)
    assert done["status"] == "successful", done
    seen = list(follow.events(registry_path, job, keep_worker=False))
    assert [e["seq"] for e in seen] == list(range(1, len(seen) + 1))
    types = [e["type"] for e in seen]
    assert types[:2] == ["queued", "started"] and types[-1] == "finished"
    assert "task" in types and [e["task"] for e in seen if e["type"] == "task"] == ["Sleep 0 seconds"]
    assert follow.results(registry_path, job)[0]["status"] == "ok"


def test_jobs_for_a_busy_target_wait_and_others_run_beside_them(registry_path, stocked, worker_process):
    first = sleeper(stocked, "app/shop/web", seconds=3)
    waits = sleeper(stocked, "app/shop/web", seconds=0)
    beside = sleeper(stocked, "app/blog/site", seconds=0)
    worker_process(slots=4)
    for job in (first, waits, beside):
        assert follow.follow(registry_path, job, keep_worker=False)["status"] == "successful"
    with Registry.open(registry_path) as reg:
        first_job, waiting_job, beside_job = (reg.get_job(job) for job in (first, waits, beside))
    assert waiting_job["started_at"] >= first_job["finished_at"]
    assert beside_job["finished_at"] <= first_job["finished_at"]  # did not wait for the other target


def test_cancel_from_another_process_stops_the_job_and_its_processes(registry_path, stocked, worker_process):
    job = sleeper(stocked)
    worker_process()
    wait_for(lambda: sleeping(registry_path, job), what="the job's sleep")
    canceled = subprocess.run([DPL, "job", "cancel", str(job)], capture_output=True, text=True, check=False,
                              env=dict(os.environ, DPL_REGISTRY=str(registry_path)))
    assert canceled.returncode == 0, canceled.stderr
    wait_for(lambda: job_status(registry_path, job) == "canceled", timeout=30, what="the cancel")
    assert sleeping(registry_path, job) == []
    assert process.job_processes(process.job_marker(registry_path, job)) == []


def test_a_job_past_its_timeout_is_stopped(registry_path, stocked, worker_process):
    job = stocked.create_job("test-sleep", "app/shop/web", "tester", params={"seconds": 60}, timeout=3)
    worker_process()
    done = follow.follow(registry_path, job, keep_worker=False)
    assert (done["status"], done["summary"]) == ("timeout", "stopped after 3 s (timeout)")
    assert process.job_processes(process.job_marker(registry_path, job)) == []


def following(job: int, env: dict) -> tuple[subprocess.Popen, str]:
    """`dpl job follow JOB`, once it follows: it has printed the job's first events (a Ctrl-C
    sent before Python has set up its handling, on a loaded machine, would test nothing)."""
    follower = subprocess.Popen([DPL, "job", "follow", str(job)], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    ready, _writable, _errors = select.select([follower.stderr], [], [], 60)
    assert ready, "dpl job follow printed nothing in 60 s"
    return follower, follower.stderr.readline()


def stopped(follower: subprocess.Popen, timeout: float) -> str:
    """The follower's stderr once it has exited; where it was stuck if it did not."""
    try:
        return follower.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        where = Path(f"/proc/{follower.pid}/wchan").read_text() if Path(f"/proc/{follower.pid}").exists() else "?"
        state = Path(f"/proc/{follower.pid}/status").read_text() if Path(f"/proc/{follower.pid}").exists() else ""
        follower.kill()
        rest = follower.communicate()[1]
        raise AssertionError(f"dpl job follow still ran {timeout} s after Ctrl-C (kernel wait: {where}; "
                             f"{' '.join(line for line in state.splitlines() if line.startswith(('State', 'Sig')))}"
                             f"); its stderr: {rest}") from None


def test_ctrl_c_stops_following_and_a_second_one_cancels(registry_path, stocked, worker_process):
    job = sleeper(stocked)
    worker_process()
    wait_for(lambda: sleeping(registry_path, job), what="the job's sleep")
    env = dict(os.environ, DPL_REGISTRY=str(registry_path))
    # Once: following stops, the job goes on.
    follower, first = following(job, env)
    follower.send_signal(signal.SIGINT)
    err = first + stopped(follower, 90)
    assert follower.returncode == 130
    assert f"`dpl job cancel {job}` cancels it" in err
    assert job_status(registry_path, job) == "running" and sleeping(registry_path, job)
    # Twice: canceled, and the follower waits until it has stopped.
    follower, _first = following(job, env)
    follower.send_signal(signal.SIGINT)
    time.sleep(0.5)
    follower.send_signal(signal.SIGINT)
    err = stopped(follower, 90)
    assert follower.returncode == 130 and f"canceling job {job}" in err
    assert job_status(registry_path, job) == "canceled"
    assert sleeping(registry_path, job) == []


def test_a_new_worker_fails_the_jobs_of_a_dead_one_and_stops_their_processes(registry_path, stocked,
                                                                             worker_process):
    job = sleeper(stocked)
    queued = sleeper(stocked, "app/blog/site", seconds=0)
    dead = worker_process(slots=1)
    wait_for(lambda: sleeping(registry_path, job), what="the job's sleep")
    os.kill(dead.pid, signal.SIGKILL)
    dead.wait()
    left = sleeping(registry_path, job)
    assert left, "the killed worker's job processes live on until a new worker stops them"
    assert job_status(registry_path, job) == "running"
    worker_process()
    wait_for(lambda: job_status(registry_path, job) == "failed", timeout=30, what="the recovery")
    with Registry.open(registry_path) as reg:
        assert "the worker running this job stopped" in reg.get_job(job)["summary"]
    assert all(not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
               for pid in left)
    # What was queued was not lost: the new worker runs it.
    assert follow.follow(registry_path, queued, keep_worker=False)["status"] == "successful"


def test_queueing_wakes_the_worker_up(registry_path, stocked, worker_process):
    """A worker that would look at the queue only every minute starts a job at once when
    whoever queued it wakes it (as the services do)."""
    worker_process(poll=60)
    wait_for(lambda: worker.worker_running(registry_path), what="the worker's lock")
    time.sleep(1)  # past its first look at the (empty) queue
    job = sleeper(stocked, seconds=0)
    queued = time.monotonic()
    worker.wake(registry_path)
    wait_for(lambda: job_status(registry_path, job) != "queued", timeout=10, what="the start")
    assert time.monotonic() - queued < 5


def test_a_stopped_worker_cancels_its_jobs_stops_their_processes_and_frees_the_lock(
        registry_path, stocked, worker_process):
    job = sleeper(stocked)
    running = worker_process()
    wait_for(lambda: sleeping(registry_path, job), what="the job's sleep")
    running.send_signal(signal.SIGTERM)
    assert running.wait(timeout=60) == 0
    assert job_status(registry_path, job) == "canceled"
    assert process.job_processes(process.job_marker(registry_path, job)) == []
    assert not worker.worker_running(registry_path)
    assert worker.lock_path(registry_path).read_text() == ""  # no pid left for wake() to signal


def test_an_idle_worker_started_on_demand_exits_and_frees_the_lock(registry_path, stocked, worker_process):
    idle = worker_process(idle_exit=1)
    assert idle.wait(timeout=30) == 0
    assert not worker.worker_running(registry_path)


def test_events_of_old_jobs_go_and_their_logs_stay(stocked, monkeypatch):
    from dpl_web.registry import jobs as job_table

    monkeypatch.setattr(job_table, "KEEP_JOB_EVENTS", 2)
    ids = [stocked.create_job("deploy", "app/shop/web", "tester") for _number in range(3)]
    for job_id in ids:
        stocked.claim_jobs("w:1", 1)
        stocked.finish_job(job_id, "successful", log=f"log of {job_id}")
    assert stocked.job_events(ids[0]) == [] and stocked.job_events(ids[1]) != []
    assert stocked.get_job(ids[0])["log"] == f"log of {ids[0]}"


def test_only_the_newest_job_directories_are_kept(stocked, registry_path, tmp_path, monkeypatch):
    from dpl_web.jobs import run as job_run

    monkeypatch.setattr(job_run, "KEEP_JOB_DIRECTORIES", 2)
    jobs_dir = tmp_path / "jobs"
    for number in range(1, 5):
        (jobs_dir / str(number)).mkdir(parents=True)
    for _older in range(4):
        stocked.create_job("deploy", "app/shop/web", "tester")
    job = stocked.get_job(stocked.create_job("deploy", "app/shop/web", "tester"))  # job 5: the four are older
    run = JobRun(job, registry_path, jobs_dir, threading.Event())
    try:
        run.prune_directories()
    finally:
        run.close()
    assert sorted(path.name for path in jobs_dir.iterdir()) == ["3", "4"]


def test_one_worker_per_registry(registry_path, stocked, worker_process):
    first = worker_process()
    wait_for(lambda: worker.worker_running(registry_path), what="the first worker's lock")
    second = subprocess.run([sys.executable, "-m", "dpl_web", "worker", "--no-wait"], capture_output=True, text=True,
                            env=dict(os.environ, DPL_REGISTRY=str(registry_path)), timeout=60, check=False)
    assert second.returncode == 0 and "another worker runs the jobs" in second.stderr
    assert first.poll() is None
    # ensure_worker starts none while one runs.
    assert worker.ensure_worker(registry_path) is False


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
        while len(process.job_processes("424242")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert set(process.job_processes("424242")) == {stubborn.pid, polite.pid}
        process.stop_job_processes("424242", grace=0.5)
        assert stubborn.wait(timeout=5) == -9 and polite.wait(timeout=5) == -15
        assert other.poll() is None, "another job's process must be left alone"
    finally:
        for proc in (stubborn, polite, other):
            proc.kill()
            proc.wait()
        stubborn.stdout.close()


def test_a_failed_deploy_is_an_alert_sent_where_alerts_go(registry_path, stocked, worker_process, receiver, tmp_path):
    url, got, _state = receiver
    (tmp_path / "config" / "dpl").mkdir(parents=True)
    (tmp_path / "config" / "dpl" / "alert-urls").write_text(url + "\n")
    # web1 is in the registry, not in LXD: the deploy fails for real, quickly.
    job, _replaced = stocked.queue_job("deploy", "app/shop/web", "tester", params={"app": "shop/web"})
    worker_process()
    assert follow.follow(registry_path, job, keep_worker=False)["status"] == "failed"
    wait_for(lambda: got, what="the alert at the receiver")
    alert = stocked.list_alerts()[0]
    assert (alert["target"], alert["state"]) == ("app/shop/web", "deploy-failed") and f"job {job}" in alert["message"]
    assert got[0]["title"] == f"DPL: {alert['message']}"
    wait_for(lambda: stocked.list_alerts()[0]["notified"] == "sent", what="the alert's outcome")
