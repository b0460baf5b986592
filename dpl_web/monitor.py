"""Monitoring: what runs, measured, and compared with what the registry says.

One collection round (:func:`collect`):

- per LXD host, ONE call (``GET /1.0/instances?recursion=2``) gives every container's state,
  addresses, CPU time, memory, root disk, network counters and processes;
- per app, in parallel and each bounded by a timeout: its health path inside the bridge
  network (``http://<container>:<live port><health path>``) and, for an app with domains on
  this host, through the host's nginx over TLS with its first domain (what Cloudflare sees);
- drift: containers LXD has and the registry does not (or the other way round), a container
  stopped that its last job left running, an address other than the recorded one.

:func:`record` stores a round's samples (registry.samples) and the state of each target, and
returns the changes of state (an app down or back, a container stopped): the alerts.
The worker runs a round every ``DPL_MONITOR_INTERVAL`` seconds (30) and sends the alerts
where ``DPL_ALERT_URLS`` says (dpl_web.alerts); ``dpl status`` runs one on demand.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpl_web.collection import host_client, lxd
from dpl_web.registry import Registry

HEALTH_TIMEOUT = 5.0  # seconds one health check may take
# Rounds in a row an app must be seen up (or down) before its state changes and an alert goes:
# one failed check among good ones is not an outage (flapping is damped).
APP_CONFIRM_ROUNDS = 2
INTERVAL = 30  # seconds between two rounds of the worker's monitoring (the default)
CHECKS_AT_ONCE = 32


@dataclass
class Round:
    """What one collection found."""

    at: float
    containers: dict[str, dict[str, Any]] = field(default_factory=dict)
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    drift: list[dict[str, str]] = field(default_factory=list)
    lxd_calls: int = 0

    @property
    def problems(self) -> list[dict[str, str]]:
        """Drift, and every app that does not answer: what `dpl status` exits non-zero for."""
        down = [{"kind": "app-down", "target": f"app/{name}",
                 "message": f"{name} does not answer its health check: {app['error'] or app['http']}",
                 "fix": "look at its journal (dpl app show), or deploy it again"}
                for name, app in self.apps.items() if not app["up"]]
        return self.drift + down

    def samples(self) -> dict[str, dict[str, Any]]:
        """The round as samples: ``{target: figures}``."""
        found = {f"container/{name}": figures for name, figures in self.containers.items()}
        found.update({f"app/{name}": figures for name, figures in self.apps.items()})
        return found


def _ipv4(state: dict[str, Any]) -> str | None:
    for name, nic in sorted((state.get("network") or {}).items()):
        if name == "lo":
            continue
        for address in nic.get("addresses") or []:
            if address.get("family") == "inet" and address.get("scope") == "global":
                return address["address"]
    return None


def _container_figures(instance: dict[str, Any], previous: dict[str, Any] | None, at: float) -> dict[str, Any]:
    state = instance.get("state") or {}
    networks = [nic for name, nic in (state.get("network") or {}).items() if name != "lo"]
    cpu_ns = (state.get("cpu") or {}).get("usage") or 0
    figures = {
        "status": instance.get("status") or state.get("status") or "Unknown",
        "ipv4": _ipv4(state),
        "cpu_ns": cpu_ns,
        "memory": (state.get("memory") or {}).get("usage") or 0,
        "disk": ((state.get("disk") or {}).get("root") or {}).get("usage") or 0,
        "rx": sum((nic.get("counters") or {}).get("bytes_received", 0) for nic in networks),
        "tx": sum((nic.get("counters") or {}).get("bytes_sent", 0) for nic in networks),
        "processes": max(0, state.get("processes") or 0),
    }
    # CPU: percent of one core since the last sample (LXD gives the time used so far).
    if previous and previous.get("cpu_ns") is not None and at > previous["at"] and cpu_ns >= previous["cpu_ns"]:
        figures["cpu"] = round((cpu_ns - previous["cpu_ns"]) / 1e9 / (at - previous["at"]) * 100, 2)
    return figures


def _get(address: str, port: int, path: str, timeout: float, domain: str | None = None) -> dict[str, Any]:
    """One health check: status and latency, or what went wrong (never raises)."""
    started = time.monotonic()
    try:
        if domain is None:
            connection = http.client.HTTPConnection(address, port, timeout=timeout)
        else:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # the origin's self-signed certificate
            connection = _ToAddress(domain, port, timeout=timeout, context=context)
            connection.address = address
        try:
            connection.request("GET", path, headers={"User-Agent": "dpl-monitor"})
            status = connection.getresponse().status
        finally:
            connection.close()
        return {"http": status, "latency_ms": round((time.monotonic() - started) * 1000, 1), "error": None}
    except (OSError, http.client.HTTPException) as exc:
        return {"http": None, "latency_ms": None, "error": str(exc) or type(exc).__name__}


class _ToAddress(http.client.HTTPSConnection):
    """HTTPS for a domain (in SNI and Host) sent to a given address: the host's nginx."""

    address = "127.0.0.1"

    def connect(self) -> None:
        self.sock = self._context.wrap_socket(socket.create_connection((self.address, self.port), self.timeout),
                                              server_hostname=self.host)


def check_app(app: dict[str, Any], ipv4: str | None, timeout: float = HEALTH_TIMEOUT) -> dict[str, Any]:
    """An app's health inside the bridge network, and through nginx when it has a domain."""
    port = app["live_port"] or app["port"]
    inside = _get(ipv4, port, app["health_path"], timeout) if ipv4 else {
        "http": None, "latency_ms": None, "error": "its container has no address"}
    figures = {"up": inside["http"] is not None and 200 <= inside["http"] < 400, **inside}
    if app["domains"] and app["host"] == "local":
        edge = _get("127.0.0.1", 443, app["health_path"], timeout, domain=app["domains"][0])
        figures.update(edge_http=edge["http"], edge_latency_ms=edge["latency_ms"])
    return figures


def collect(registry_path: Path | str, timeout: float = HEALTH_TIMEOUT) -> Round:
    """One round: every host's containers (one LXD call each), every app's health, drift."""
    with Registry.open(registry_path, create=False) as reg, reg.snapshot():
        hosts, containers, apps = reg.list_hosts(), reg.list_containers(), reg.list_apps()
        previous = reg.latest_samples([f"container/{container['name']}" for container in containers])
    found = Round(at=time.time())
    recorded = {container["name"]: container for container in containers}
    for host in hosts:
        try:
            with host_client(host, 10) as client:
                instances = client.get("/1.0/instances", {"recursion": 2})
                found.lxd_calls += 1
        except lxd.LXDError as exc:
            found.drift.append({"kind": "host-unreachable", "target": f"host/{host['name']}",
                                "message": f"LXD on {host['name']} cannot be reached: {exc}",
                                "fix": "see that LXD runs there (dpl's health page says more)"})
            continue
        seen = set()
        for instance in instances:
            name = instance["name"]
            if name not in recorded or recorded[name]["host"] != host["name"]:
                found.drift.append({"kind": "unknown-container", "target": f"container/{name}",
                                    "message": f"LXD on {host['name']} has a container {name} that the registry "
                                               "does not know",
                                    "fix": f"record it (dpl container add {name}), or delete it"})
                continue
            seen.add(name)
            figures = _container_figures(instance, previous.get(f"container/{name}"), found.at)
            found.containers[name] = figures
            mine = recorded[name]
            if figures["status"] != "Running" and mine["status"] == "Running":
                found.drift.append({"kind": "container-stopped", "target": f"container/{name}",
                                    "message": f"{name} is {figures['status']}, but its last job left it running",
                                    "fix": f"start it (dpl container start {name})"})
            elif figures["status"] == "Running" and figures["ipv4"] and figures["ipv4"] != mine["ipv4"]:
                found.drift.append({"kind": "address-changed", "target": f"container/{name}",
                                    "message": f"{name} has the address {figures['ipv4']}, the registry "
                                               f"{mine['ipv4']}",
                                    "fix": f"reconfigure it (dpl container reconfigure {name}) to put the "
                                           "recorded address back"})
        for name, container in recorded.items():
            if container["host"] == host["name"] and name not in seen:
                found.drift.append({"kind": "container-missing", "target": f"container/{name}",
                                    "message": f"the registry has a container {name} that LXD on {host['name']} "
                                               "does not have",
                                    "fix": f"create it again (dpl container create), or forget it "
                                           f"(dpl container forget {name})"})
    with ThreadPoolExecutor(max_workers=CHECKS_AT_ONCE) as pool:
        checks = {f"{app['project']}/{app['name']}": pool.submit(
            check_app, app, found.containers.get(app["container"], {}).get("ipv4")
            or recorded[app["container"]]["ipv4"], timeout) for app in apps}
        found.apps = {name: check.result() for name, check in checks.items()}
    return found


def record(registry_path: Path | str, found: Round) -> list[dict[str, str]]:
    """Store the round's samples and each target's state; the changes of state (alerts):
    ``{"target", "state", "was", "message"}``."""
    alerts = []
    # One transaction for the whole round: one write to disk, not one per target.
    with Registry.open(registry_path, create=False) as reg, reg.transaction():
        known = reg.states()
        reg.add_samples(found.at, found.samples())
        for name, figures in found.containers.items():
            states = [(f"container/{name}", figures["status"].lower(), "")]
            for target, state, detail in states:
                was = reg.set_state(target, state, detail)
                if was is not None:
                    alerts.append({"target": target, "state": state, "was": was["state"],
                                   "message": f"container {name} is now {state} (was {was['state']})"})
        for name, figures in found.apps.items():
            state = "up" if figures["up"] else "down"
            was = reg.set_state(f"app/{name}", state, figures["error"] or str(figures["http"]),
                                confirm=APP_CONFIRM_ROUNDS)
            if was is not None:
                alerts.append({"target": f"app/{name}", "state": state, "was": was["state"],
                               "message": f"app {name} is {state}" + (
                                   f": {figures['error'] or figures['http']}" if state == "down" else " again")})
        current = set()
        for problem in found.drift:
            key = f"drift/{problem['kind']}/{problem['target']}"
            current.add(key)
            was = reg.set_state(key, "present", problem["message"])
            if was is not None or key not in known:
                alerts.append({"target": problem["target"], "state": problem["kind"], "was": "",
                               "message": problem["message"]})
        for key, state in known.items():
            if key.startswith("drift/") and state["state"] == "present" and key not in current:
                reg.set_state(key, "cleared")
                alerts.append({"target": key.split("/", 2)[2], "state": "cleared", "was": key.split("/")[1],
                               "message": f"cleared: {state['detail']}"})
        for alert in alerts:  # each one kept (the dashboard shows them) and numbered for its sending
            alert["id"] = reg.add_alert(alert["target"], alert["state"], alert["message"])
    return alerts
