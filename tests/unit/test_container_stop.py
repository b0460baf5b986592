"""The container module's stop when the clean stop times out: it forces the stop, and a
clean stop that finished meanwhile (LXD then refuses to stop a container that is not
running) is what was asked, not a failure. (Seen on CI under load.)"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ansible_collections.dpl.platform.plugins.module_utils.lxd import LXDError
from ansible_collections.dpl.platform.plugins.modules.container import ContainerManager


class SlowStop:
    """LXD whose clean stop times out while the container goes on stopping."""

    def __init__(self, status_after: str):
        self.status_after = status_after
        self.calls = []

    def instance_path(self, name):
        return f"/1.0/instances/{name}"

    def set_state(self, name, action, timeout, force=False):
        self.calls.append(("force" if force else "clean", action))
        if not force:
            raise LXDError("timed out waiting for the operation")
        raise LXDError(f'container is not running: "{name}"')

    def instance(self, name):
        return {"name": name, "status": self.status_after}


def manager(client):
    return ContainerManager(SimpleNamespace(params={"name": "web1", "timeout": 10}), client)


def test_a_clean_stop_that_finished_late_is_a_stop():
    client = SlowStop("Stopped")
    manager(client).stop()
    assert client.calls == [("clean", "stop"), ("force", "stop")]


def test_a_container_still_running_after_the_forced_stop_is_an_error():
    with pytest.raises(LXDError, match="not running"):
        manager(SlowStop("Running")).stop()
