#!/usr/bin/python
# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: container
short_description: Create, configure, start, stop and delete an LXD system container
version_added: 0.1.0
description:
  - Manages one LXD container through the LXD REST API, locally or on a remote LXD host
    over HTTPS.
  - Gives the container a fixed IPv4 address on its bridge (a static DHCP lease in LXD's
    dnsmasq), so it keeps the same address across restarts and nginx never points at a
    stale one.
  - Waits until a started container is running and has its IPv4 address, and fails with a
    message saying so when the wait times out.
  - Every LXD request and operation is bounded by O(timeout).
  - When a container created by this task cannot be configured or started, it is deleted
    again, so a failure never leaves a half-made container behind.
author: DPL maintainers (@dpl-platform)
options:
  name:
    description:
      - Name of the container (an LXD instance name, 1-63 lower-case letters, digits and
        dashes, not starting with a digit or a dash).
    type: str
    required: true
  state:
    description:
      - V(present) makes sure the container exists (a new one is left stopped).
      - V(started) and V(stopped) also set whether it runs.
      - V(restarted) restarts it (or starts it), and always reports a change.
      - V(absent) stops and deletes it.
    type: str
    choices: [present, started, stopped, restarted, absent]
    default: started
  image:
    description:
      - Image alias or fingerprint in the LXD host's local image store, used when the
        container is created. Changing it later does not rebuild the container.
    type: str
    default: dpl-base
  profiles:
    description: Profiles applied to the container, in order.
    type: list
    elements: str
    default: [default]
  config:
    description:
      - Extra instance config keys (for example C(security.nesting)). Only the keys given are
        managed. Use O(limits) for resource limits.
    type: dict
    default: {}
  limits:
    description: Resource limits.
    type: dict
    default: {}
    suboptions:
      cpu:
        description: Number of CPUs (V(2)) or a CPU set (V(0-1)); becomes C(limits.cpu).
        type: str
      memory:
        description: Memory limit such as V(512MB) or V(2GiB); becomes C(limits.memory).
        type: str
      disk:
        description: Size of the root disk such as V(10GiB); set on the root disk device.
        type: str
  ipv4:
    description:
      - Fixed IPv4 address on the container's nic (C(ipv4.address) of the nic device). Leave
        it unset to let LXD's DHCP pick one.
      - A running container given another address is restarted, so that it gets it with its
        next lease; one that has the address already (its lease pinned as it is) keeps running.
    type: str
  network:
    description:
      - Managed network (bridge) the container's nic is attached to. Needed with O(ipv4);
        when unset, the network of the nic in the container's profiles is used.
    type: str
  nic:
    description: Name of the nic device (and of the interface in the container).
    type: str
    default: eth0
  filtering:
    description:
      - Set C(security.ipv4_filtering) and C(security.mac_filtering) on the nic, so the
        container can send only from its own IPv4 and MAC addresses. It cannot take the
        host's bridge address or another container's, nor answer ARP for them.
      - Needs the nic's network (O(network), or the nic of the profiles). Containers still
        reach each other's addresses; see P(dpl.platform.bridge_isolation#module) to keep one
        to the host only.
    type: bool
    default: true
  wait_for_ipv4:
    description: Whether a started container must have an IPv4 address before the task ends.
    type: bool
    default: true
  timeout:
    description:
      - Seconds each LXD operation (create, start, stop, delete) and the wait for the IPv4
        address may take before the task fails.
    type: int
    default: 120
extends_documentation_fragment:
  - dpl.platform.lxd_api
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
notes:
  - Run it on the controller (C(delegate_to) V(localhost) or a play on V(localhost)); it
    reaches the LXD host through O(lxd_endpoint).
  - Stopping asks the container to shut down cleanly for up to half of O(timeout), then
    forces it.
seealso:
  - module: dpl.platform.lxd_profile
  - plugin: dpl.platform.lxd
    plugin_type: connection
"""

EXAMPLES = r"""
- name: A running container with a fixed address and limits
  dpl.platform.container:
    name: shop
    image: dpl-base
    ipv4: 10.210.0.21
    network: dplbr0
    limits:
      cpu: "2"
      memory: 1GiB
      disk: 10GiB
  delegate_to: localhost

- name: The same container on a remote LXD host
  dpl.platform.container:
    name: shop
    state: started
    lxd_endpoint: https://vps2.example.net:8443
    client_cert: ~/.config/dpl/client.crt
    client_key: ~/.config/dpl/client.key
    server_cert: ~/.config/dpl/hosts/vps2.crt
  delegate_to: localhost

- name: Gone
  dpl.platform.container:
    name: shop
    state: absent
  delegate_to: localhost
"""

RETURN = r"""
name:
  description: Name of the container.
  returned: always
  type: str
  sample: shop
status:
  description: The container's status after the task (V(Running), V(Stopped), V(absent)).
  returned: always
  type: str
  sample: Running
ipv4:
  description: The container's IPv4 address, when it runs and has one.
  returned: when running
  type: str
  sample: 10.210.0.21
created:
  description: Whether the container was created by this task.
  returned: always
  type: bool
actions:
  description: What the task did (or would do in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: [create, configure, start]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dpl.platform.plugins.module_utils import validation
from ansible_collections.dpl.platform.plugins.module_utils.lxd import LXDError, LXDNotFound, LXDTimeout
from ansible_collections.dpl.platform.plugins.module_utils.lxd_module import (
    lxd_argument_spec,
    lxd_client,
    lxd_value,
)


class ContainerManager:
    """Compares the container LXD has with the one asked for, and closes the gap."""

    def __init__(self, module, client):
        self.module = module
        self.client = client
        self.params = module.params
        self.name = self.params["name"]
        self.path = client.instance_path(self.name)
        self.actions = []
        self.created = False

    # -- what is asked for ---------------------------------------------------------

    def desired_config(self):
        config = {key: lxd_value(value) for key, value in self.params["config"].items()}
        limits = self.params["limits"] or {}
        if limits.get("cpu"):
            config["limits.cpu"] = limits["cpu"]
        if limits.get("memory"):
            config["limits.memory"] = limits["memory"]
        return config

    def desired_devices(self, current_devices=None):
        """Instance-level devices: the nic with its fixed address, the root disk with its size."""
        devices = {}
        params = self.params
        if params["ipv4"] or params["filtering"]:
            network = params["network"] or self.profile_device_value(params["nic"], "network")
            if not network:
                self.module.fail_json(
                    msg="%s needs the container's network: set 'network', or give a profile a nic "
                        "named %r attached to a managed network"
                        % ("ipv4" if params["ipv4"] else "filtering", params["nic"]))
            nic = {"type": "nic", "name": params["nic"], "network": network}
            if params["ipv4"]:
                nic["ipv4.address"] = params["ipv4"]
            if params["filtering"]:
                nic.update({"security.ipv4_filtering": "true", "security.mac_filtering": "true"})
            devices[params["nic"]] = nic
        disk = (params["limits"] or {}).get("disk")
        if disk:
            pool = ((current_devices or {}).get("root") or {}).get("pool") or \
                self.profile_device_value("root", "pool")
            if not pool:
                self.module.fail_json(msg="limits.disk needs a root disk device in the container's profiles")
            devices["root"] = {"type": "disk", "path": "/", "pool": pool, "size": disk}
        return devices

    def profile_device_value(self, device, key):
        for profile in reversed(self.params["profiles"]):
            try:
                devices = self.client.get("/1.0/profiles/%s" % profile).get("devices") or {}
            except LXDNotFound:
                self.module.fail_json(msg="profile %r does not exist on %s" % (profile, self.client.describe()))
            value = (devices.get(device) or {}).get(key)
            if value:
                return value
        return None

    # -- what LXD has ----------------------------------------------------------------

    def current(self):
        try:
            return self.client.instance(self.name)
        except LXDNotFound:
            return None

    # -- making it so ----------------------------------------------------------------

    def run(self):
        params = self.params
        state = params["state"]
        current = self.current()
        before = _describe(current)

        if state == "absent":
            if current is not None:
                self.act("delete", self.delete, current)
            return self.result(before, {"state": "absent"}, "absent")

        if current is None:
            self.act("create", self.create)
            current = None if self.module.check_mode else self.current()
        else:
            self.reconcile(current)

        status = "Stopped" if current is None else current["status"]
        try:
            if state == "started" and status != "Running":
                self.act("start", self.set_state, "start")
            elif state == "stopped" and status != "Stopped":
                self.act("stop", self.stop)
            elif state == "restarted":
                self.act("restart" if status == "Running" else "start", self.set_state,
                         "restart" if status == "Running" else "start")
            elif self.needs_restart and status == "Running":
                # A new fixed address reaches the container with its next DHCP lease.
                self.act("restart", self.set_state, "restart")
        except LXDError as exc:
            self.undo_create()
            self.module.fail_json(msg="LXD could not %s %r: %s%s" % (
                self.actions[-1], self.name, exc, self.undo_note()), actions=self.actions)

        ipv4 = None
        if self.module.check_mode:
            final = {"started": "Running", "restarted": "Running", "stopped": "Stopped"}.get(state, status)
        else:
            final = self.client.instance(self.name)["status"]
            if final == "Running" and params["wait_for_ipv4"] and (
                    state in ("started", "restarted") or set(self.actions) & {"start", "restart"}):
                ipv4 = self.wait_for_ipv4()
            elif final == "Running":
                addresses = self.client.ipv4_addresses(self.name, params["nic"])
                ipv4 = addresses[0] if addresses else None
        after = {"state": final, "profiles": params["profiles"], "config": self.desired_config(),
                 "devices": self.desired_devices((current or {}).get("devices"))}
        return self.result(before, after, final, ipv4)

    needs_restart = False

    def act(self, action, function, *args):
        self.actions.append(action)
        if not self.module.check_mode:
            function(*args)

    def create(self):
        body = {
            "name": self.name,
            "source": {"type": "image", "alias": self.params["image"]}
            if not _is_fingerprint(self.params["image"]) else
            {"type": "image", "fingerprint": self.params["image"]},
            "profiles": self.params["profiles"],
            "config": self.desired_config(),
            "devices": self.desired_devices(),
        }
        for profile in self.params["profiles"]:
            if not self.client.exists("/1.0/profiles/%s" % profile):
                self.module.fail_json(msg="profile %r does not exist on %s" % (profile, self.client.describe()))
        image = self.params["image"]
        if not self.client.exists("/1.0/images/%s" % image if _is_fingerprint(image) else
                                  "/1.0/images/aliases/%s" % image):
            self.module.fail_json(
                msg="image %r is not in the local image store of %s (scripts/setup builds dpl-base; "
                    "`lxc image list` shows what is there)" % (self.params["image"], self.client.describe()))
        try:
            self.client.sync_or_wait("POST", "/1.0/instances", body, timeout=self.params["timeout"])
        except LXDError as exc:
            # LXD may leave a half-made instance behind when creation fails late.
            self.created = self.current() is not None
            self.undo_create()
            self.module.fail_json(msg="LXD refused to create %r: %s" % (self.name, exc), actions=self.actions)
        self.created = True

    def reconcile(self, current):
        """Update profiles, config and devices that differ from what is asked for."""
        config = self.desired_config()
        devices = self.desired_devices(current.get("devices"))
        current_config = current.get("config") or {}
        current_devices = current.get("devices") or {}
        changed_keys = sorted(k for k, v in config.items() if current_config.get(k) != v)
        changed_devices = sorted(d for d, spec in devices.items() if current_devices.get(d) != spec)
        profiles_differ = current.get("profiles") != self.params["profiles"]
        if not (changed_keys or changed_devices or profiles_differ):
            return
        nic = self.params["nic"]
        wanted_ipv4 = devices.get(nic, {}).get("ipv4.address")
        if nic in changed_devices and (current_devices.get(nic) or {}).get("ipv4.address") != wanted_ipv4:
            # A new fixed address reaches a running container with its next DHCP lease, so
            # it is restarted; not when it has that address already (its lease pinned as it
            # is, as when a container made outside DPL is imported: its apps keep running).
            running_with_it = current.get("status") == "Running" and wanted_ipv4 in \
                self.client.ipv4_addresses(self.name, nic)
            self.needs_restart = not running_with_it
        body = {
            "architecture": current.get("architecture"),
            "config": dict(current_config, **config),
            "devices": dict(current_devices, **devices),
            "ephemeral": current.get("ephemeral", False),
            "profiles": self.params["profiles"],
            "description": current.get("description", ""),
        }
        try:
            self.act("configure", self.client.sync_or_wait, "PUT", self.path, body, None,
                     self.params["timeout"])
        except LXDError as exc:
            self.module.fail_json(msg="LXD refused the new configuration of %r: %s" % (self.name, exc),
                                  actions=self.actions)

    def set_state(self, action):
        self.client.set_state(self.name, action, timeout=self.params["timeout"])

    def stop(self):
        try:
            self.client.set_state(self.name, "stop", timeout=max(1, self.params["timeout"] // 2))
        except LXDError:
            # Did not shut down cleanly in time: force it, as `lxc stop --force` would. The clean
            # stop may still finish meanwhile (a loaded host): then LXD refuses to stop a
            # container that is not running, and stopped is what was asked.
            try:
                self.client.set_state(self.name, "stop", timeout=self.params["timeout"], force=True)
            except LXDError:
                if (self.current() or {}).get("status") != "Stopped":
                    raise

    def delete(self, current):
        if current["status"] != "Stopped":
            self.client.set_state(self.name, "stop", timeout=self.params["timeout"], force=True)
        self.client.sync_or_wait("DELETE", self.path, timeout=self.params["timeout"])

    def undo_create(self):
        if not self.created:
            return
        try:
            current = self.current()
            if current is not None:
                self.delete(current)
        except LXDError:
            pass

    def undo_note(self):
        return "; the container made by this task was removed again" if self.created else ""

    def wait_for_ipv4(self):
        try:
            return self.client.wait_for_ipv4(self.name, timeout=self.params["timeout"],
                                             interface=self.params["nic"])
        except LXDTimeout:
            self.undo_create()
            self.module.fail_json(
                msg="%r is running but got no IPv4 address on %s within %ss: is DHCP working on its "
                    "network (LXD's dnsmasq on the bridge), and does the image configure %s?%s"
                    % (self.name, self.params["nic"], self.params["timeout"], self.params["nic"],
                       self.undo_note()),
                actions=self.actions)

    def result(self, before, after, status, ipv4=None):
        result = dict(changed=bool(self.actions), name=self.name, status=status, created=self.created
                      or (self.module.check_mode and "create" in self.actions),
                      actions=self.actions)
        if ipv4:
            result["ipv4"] = ipv4
        if self.actions:
            result["diff"] = dict(before=before, after=after)
        return result


def _describe(instance):
    if instance is None:
        return {"state": "absent"}
    return {"state": instance["status"], "profiles": instance.get("profiles"),
            "config": {k: v for k, v in (instance.get("config") or {}).items()
                       if not k.startswith(("volatile.", "image."))},
            "devices": instance.get("devices") or {}}


def _is_fingerprint(image):
    return len(image) >= 12 and all(ch in "0123456789abcdef" for ch in image)


def validate(module):
    """Refuse bad input before anything reaches LXD."""
    params = module.params
    try:
        validation.container_name(params["name"], "name")
        for profile in params["profiles"]:
            validation.name(profile, "profiles")
        if params["ipv4"]:
            params["ipv4"] = validation.ipv4(params["ipv4"], "ipv4")
        if params["network"]:
            validation.name(params["network"], "network")
        limits = params["limits"] or {}
        if limits.get("cpu"):
            limits["cpu"] = validation.cpu_limit(limits["cpu"], "limits.cpu")
        if limits.get("memory"):
            validation.size(limits["memory"], "limits.memory")
        if limits.get("disk"):
            validation.size(limits["disk"], "limits.disk")
        if not params["image"] or any(ch.isspace() or ch in "/?#%" for ch in params["image"]):
            raise validation.ValidationError("image", params["image"],
                                             "must be an image alias or fingerprint")
    except validation.ValidationError as exc:
        module.fail_json(msg=str(exc))
    if params["timeout"] < 1:
        module.fail_json(msg="timeout must be at least 1 second")


def main():
    argument_spec = lxd_argument_spec()
    argument_spec.update(
        name=dict(type="str", required=True),
        state=dict(type="str", default="started",
                   choices=["present", "started", "stopped", "restarted", "absent"]),
        image=dict(type="str", default="dpl-base"),
        profiles=dict(type="list", elements="str", default=["default"]),
        config=dict(type="dict", default={}),
        limits=dict(type="dict", default={}, options=dict(
            cpu=dict(type="str"), memory=dict(type="str"), disk=dict(type="str"))),
        ipv4=dict(type="str"),
        network=dict(type="str"),
        nic=dict(type="str", default="eth0"),
        filtering=dict(type="bool", default=True),
        wait_for_ipv4=dict(type="bool", default=True),
        timeout=dict(type="int", default=120),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    validate(module)
    client = lxd_client(module)
    manager = ContainerManager(module, client)
    try:
        result = manager.run()
    except LXDError as exc:
        manager.undo_create()
        module.fail_json(msg="LXD at %s: %s%s" % (client.describe(), exc, manager.undo_note()),
                         actions=manager.actions)
    finally:
        client.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
