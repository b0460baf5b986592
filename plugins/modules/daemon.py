#!/usr/bin/python
# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: daemon
short_description: Keep a long-running program running, with or without systemd
version_added: 0.1.0
description:
  - Where systemd is the init system (PID 1), the program runs as a systemd unit, either an
    existing unit named by O(systemd_unit) or one this module writes from O(command).
  - Elsewhere (containers and sandboxes without an init system) the program is started
    directly, detached in its own session, with its output appended to O(log). It is found
    again by O(pidfile) or by O(process_name), so a daemon started by hand or by a package
    counts as running and is left alone.
  - A program this module started directly (found by O(pidfile)) is restarted when its
    O(command) or O(environment) changed since. What was started is recorded next to the pid
    file (C(<pidfile>.started)), so an upgrade that changes a daemon's flags takes effect.
  - Starting waits until the program is up (O(ready_port) or O(ready_socket) accepting
    connections when given, otherwise still running a second later) and fails with the end
    of its log when it is not.
  - Programs are started with C(subprocess.Popen) in a new session rather than
    C(run_command), which would wait for them to end.
author: DPL maintainers (@dpl-platform)
options:
  name:
    description: Name of the daemon; also the name of the systemd unit this module writes.
    type: str
    required: true
  command:
    description:
      - Program and arguments, run in the foreground (the module detaches it). Required
        unless systemd runs the system and O(systemd_unit) is given.
    type: list
    elements: str
  environment:
    description: Environment variables for the program, on top of a minimal C(PATH).
    type: dict
    default: {}
  chdir:
    description: Working directory of the program.
    type: path
    default: /
  pidfile:
    description:
      - File holding the process id of a program started directly. The module writes it.
    type: path
  process_name:
    description:
      - Process name (as in C(/proc/PID/comm)) that identifies the daemon when it may have
        been started by something else (a package, an administrator).
    type: str
  log:
    description: File that receives the output of a program started directly.
    type: path
  systemd_unit:
    description: Existing systemd unit to use when systemd is PID 1 (for example C(lxd.service)).
    type: str
  init:
    description:
      - V(auto) uses systemd when it is PID 1 and starts directly otherwise.
    type: str
    choices: [auto, systemd, direct]
    default: auto
  ready_port:
    description: TCP port on 127.0.0.1 that must accept connections before the daemon counts as up.
    type: int
  ready_socket:
    description: Unix socket that must accept connections before the daemon counts as up.
    type: path
  start_timeout:
    description: Seconds to wait for the daemon to be up.
    type: int
    default: 30
  state:
    description: Whether the daemon runs.
    type: str
    choices: [started, stopped]
    default: started
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: LXD runs (its package's unit under systemd, a detached lxd elsewhere)
  dpl.platform.daemon:
    name: lxd
    command: [lxd, --group, root, --logfile, /var/log/dpl/lxd.log]
    process_name: lxd
    systemd_unit: lxd.service
    log: /var/log/dpl/lxd.out
    ready_socket: /var/lib/lxd/unix.socket

- name: The web front end runs under gunicorn
  dpl.platform.daemon:
    name: dpl-web
    command: [/opt/dpl/.venv/bin/gunicorn, --bind, 127.0.0.1:8470, dpl_web.wsgi:app]
    pidfile: /root/.local/state/dpl/web.pid
    log: /root/.local/state/dpl/log/web.log
    ready_port: 8470
"""

RETURN = r"""
pid:
  description: Process id of the daemon started directly.
  returned: when started directly
  type: int
init:
  description: The init system used, V(systemd) or V(direct).
  returned: always
  type: str
restarted:
  description: Whether a directly started daemon was restarted because its command or environment changed.
  returned: when that happened
  type: bool
unit_file:
  description: The systemd unit file this module wrote.
  returned: when systemd runs a unit this module wrote
  type: str
"""

import hashlib
import json
import os
import shlex
import signal
import socket
import subprocess
import time

from ansible.module_utils.basic import AnsibleModule

# Seconds a program without a readiness probe must stay up to count as started.
STILL_ALIVE_AFTER = 1.0


def systemd_is_init():
    # The check sd_booted(3) documents.
    return os.path.isdir("/run/systemd/system")


def process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not running, though kill(0) says it exists.
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def pids_named(name):
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/comm" % entry) as handle:
                    if handle.read().strip() == name and process_alive(int(entry)):
                        pids.append(int(entry))
            except OSError:
                continue
    return sorted(pids)


def accepts(family, address):
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(1)
    try:
        sock.connect(address)
        return True
    except OSError:
        return False
    finally:
        sock.close()


def log_tail(path, lines=20):
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 8192))
            return b"\n".join(handle.read().splitlines()[-lines:]).decode(errors="replace")
    except OSError:
        return ""


class DirectDaemon:
    """A program started and watched without an init system."""

    def __init__(self, module):
        self.module = module
        self.params = module.params

    def fingerprint(self):
        """What identifies this start: the command and environment asked for."""
        wanted = {"command": self.params["command"], "environment": self.params["environment"]}
        return hashlib.sha256(json.dumps(wanted, sort_keys=True, default=str).encode()).hexdigest()

    def started_file(self):
        return self.params["pidfile"] + ".started" if self.params["pidfile"] else None

    def outdated(self, pid):
        """Is the running ``pid`` one this module started with another command or environment?"""
        started = self.started_file()
        if not started or not self.owns(pid):
            return False  # found by process name: someone else started it, leave it alone
        try:
            with open(started) as handle:
                return handle.read().strip() != self.fingerprint()
        except OSError:
            return True  # started before fingerprints were recorded

    def owns(self, pid):
        try:
            with open(self.params["pidfile"]) as handle:
                return int(handle.read().strip()) == pid
        except (OSError, ValueError):
            return False

    def running_pids(self):
        pidfile = self.params["pidfile"]
        if pidfile and os.path.exists(pidfile):
            try:
                with open(pidfile) as handle:
                    pid = int(handle.read().strip())
            except (OSError, ValueError):
                pid = None
            if pid and process_alive(pid):
                return [pid]
        if self.params["process_name"]:
            return pids_named(self.params["process_name"])
        return []

    def start(self):
        params = self.params
        log = params["log"] or os.devnull
        if params["log"]:
            os.makedirs(os.path.dirname(log) or ".", exist_ok=True)
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "LANG": "C.UTF-8"}
        env.update({key: str(value) for key, value in params["environment"].items()})
        with open(log, "ab") as output:
            try:
                # A new session detaches it from Ansible: it survives the task and the play.
                child = subprocess.Popen(
                    params["command"], stdin=subprocess.DEVNULL, stdout=output,
                    stderr=subprocess.STDOUT, cwd=params["chdir"], env=env,
                    start_new_session=True, close_fds=True)
            except OSError as exc:
                self.module.fail_json(msg="cannot start %s: %s" % (params["name"], exc))
        if params["pidfile"]:
            os.makedirs(os.path.dirname(params["pidfile"]) or ".", exist_ok=True)
            with open(params["pidfile"], "w") as handle:
                handle.write("%d\n" % child.pid)
            with open(self.started_file(), "w") as handle:
                handle.write(self.fingerprint() + "\n")
        self.wait_ready(child)
        return child.pid

    def wait_ready(self, child):
        params = self.params
        started = time.monotonic()
        deadline = started + params["start_timeout"]
        # Without a port or socket to ask, "up" means "still running a moment later": a
        # program that dies on a bad configuration does so within that second.
        settle = 0 if (params["ready_port"] or params["ready_socket"]) else STILL_ALIVE_AFTER
        while True:
            if child.poll() is not None and not (params["process_name"] and self.running_pids()):
                self.module.fail_json(
                    msg="%s exited right after starting (rc=%s); the end of its log %s:\n%s"
                        % (params["name"], child.returncode, params["log"], log_tail(params["log"])))
            ready = True
            if params["ready_port"]:
                ready = accepts(socket.AF_INET, ("127.0.0.1", params["ready_port"]))
            if ready and params["ready_socket"]:
                ready = accepts(socket.AF_UNIX, params["ready_socket"])
            if ready and time.monotonic() - started >= settle:
                return
            if time.monotonic() >= deadline:
                self.module.fail_json(
                    msg="%s did not get ready within %ss; the end of its log %s:\n%s"
                        % (params["name"], params["start_timeout"], params["log"],
                           log_tail(params["log"])))
            time.sleep(0.1)

    def stop(self, pids):
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + self.params["start_timeout"]
        while any(process_alive(pid) for pid in pids):
            if time.monotonic() >= deadline:
                self.module.fail_json(msg="%s (pids %s) did not stop within %ss after SIGTERM"
                                          % (self.params["name"], pids, self.params["start_timeout"]))
            time.sleep(0.1)
        for path in (self.params["pidfile"], self.started_file()):
            if path and os.path.exists(path):
                os.unlink(path)


class SystemdDaemon:
    """A program run by systemd, as an existing unit or one written here."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.systemctl = module.get_bin_path("systemctl", required=True)
        self.unit = params_unit(self.params)
        self.unit_file = None if self.params["systemd_unit"] else \
            "/etc/systemd/system/%s" % self.unit

    def unit_text(self):
        params = self.params
        lines = [
            "# Written by dpl.platform.daemon; changes here are overwritten.",
            "[Unit]",
            "Description=%s (DPL)" % params["name"],
            "After=network.target",
            "",
            "[Service]",
            "ExecStart=%s" % shlex.join(params["command"]),
            "WorkingDirectory=%s" % params["chdir"],
        ]
        for key, value in sorted(params["environment"].items()):
            lines.append('Environment="%s=%s"' % (key, str(value).replace('"', '\\"')))
        lines += ["Restart=on-failure", "", "[Install]", "WantedBy=multi-user.target", ""]
        return "\n".join(lines)

    def unit_file_changed(self):
        if not self.unit_file:
            return False
        try:
            with open(self.unit_file) as handle:
                return handle.read() != self.unit_text()
        except OSError:
            return True

    def is_active(self):
        rc, dummy, dummy = self.module.run_command([self.systemctl, "is-active", "--quiet", self.unit])
        return rc == 0

    def run(self, *args):
        rc, out, err = self.module.run_command([self.systemctl] + list(args))
        if rc != 0:
            self.module.fail_json(msg="systemctl %s failed: %s" % (" ".join(args), err.strip() or out),
                                  rc=rc, stdout=out, stderr=err)


def params_unit(params):
    unit = params["systemd_unit"] or params["name"]
    return unit if "." in unit else unit + ".service"


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            command=dict(type="list", elements="str"),
            environment=dict(type="dict", default={}),
            chdir=dict(type="path", default="/"),
            pidfile=dict(type="path"),
            process_name=dict(type="str"),
            log=dict(type="path"),
            systemd_unit=dict(type="str"),
            init=dict(type="str", default="auto", choices=["auto", "systemd", "direct"]),
            ready_port=dict(type="int"),
            ready_socket=dict(type="path"),
            start_timeout=dict(type="int", default=30),
            state=dict(type="str", default="started", choices=["started", "stopped"]),
        ),
        supports_check_mode=True,
    )
    params = module.params
    init = params["init"]
    if init == "auto":
        init = "systemd" if systemd_is_init() else "direct"
    result = dict(changed=False, init=init)

    if init == "direct":
        if not params["command"]:
            module.fail_json(msg="command is required to run %s without systemd" % params["name"])
        if not (params["pidfile"] or params["process_name"]):
            module.fail_json(msg="pidfile or process_name is required to find %s again" % params["name"])
        daemon = DirectDaemon(module)
        pids = daemon.running_pids()
        if params["state"] == "started" and not pids:
            result["changed"] = True
            if not module.check_mode:
                result["pid"] = daemon.start()
        elif params["state"] == "started" and daemon.outdated(pids[0]):
            result.update(changed=True, restarted=True)
            if not module.check_mode:
                daemon.stop(pids)
                result["pid"] = daemon.start()
        elif params["state"] == "started":
            result["pid"] = pids[0]
        elif pids:
            result["changed"] = True
            if not module.check_mode:
                daemon.stop(pids)
        module.exit_json(**result)

    if not params["systemd_unit"] and not params["command"]:
        module.fail_json(msg="command or systemd_unit is required for %s" % params["name"])
    daemon = SystemdDaemon(module)
    if daemon.unit_file:
        result["unit_file"] = daemon.unit_file
    active = daemon.is_active()
    if params["state"] == "stopped":
        if active:
            result["changed"] = True
            if not module.check_mode:
                daemon.run("stop", daemon.unit)
        module.exit_json(**result)
    rewrite = daemon.unit_file_changed()
    if rewrite or not active:
        result["changed"] = True
        if not module.check_mode:
            if rewrite:
                with open(daemon.unit_file, "w") as handle:
                    handle.write(daemon.unit_text())
                daemon.run("daemon-reload")
            daemon.run("enable", daemon.unit)
            daemon.run("restart" if active else "start", daemon.unit)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
