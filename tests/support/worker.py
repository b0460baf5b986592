"""A worker for the tests: the real one, with one more kind of job, ``test-sleep``, which
runs tests/support/sleep.yml (a playbook that sleeps on localhost: no LXD needed).

Run as ``python -m tests.support.worker REGISTRY SLOTS IDLE_EXIT [POLL]`` (from the
checkout), so a test can kill it like any worker process.
"""

from __future__ import annotations

import sys

from dpl_web.jobs import kinds
from dpl_web.jobs.run import JobRun
from dpl_web.jobs.worker import Worker


def sleep(run: JobRun) -> str:
    return run.playbook("tests/support/sleep.yml", {"seconds": run.params["seconds"]})


kinds.KINDS["test-sleep"] = sleep

if __name__ == "__main__":
    registry, slots, idle_exit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    poll = float(sys.argv[4]) if len(sys.argv) > 4 else 0.1
    sys.exit(0 if Worker(registry, slots=slots, idle_exit=idle_exit, poll=poll, monitor_interval=0).run() else 1)
