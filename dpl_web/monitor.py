"""Monitoring: what runs, measured, and compared with what the registry says.

One collection round (:func:`collect`):

- per LXD host, ONE call (``GET /1.0/instances?recursion=2``) gives every container's state,
  addresses, CPU time, memory, root disk, network counters and processes;
- per app, in parallel and each bounded by a timeout: its health path inside the bridge
  network (``http://<container>:<live port><health path>``) and, for an app with domains on
  this host, through the host's nginx over TLS with its first domain (what Cloudflare sees);
- per container with apps, ONE exec (beside the health checks): each app's service (loaded,
  active, restarts) and the release its live link points at, which gives the live commit;
- per domain, from nginx's traffic log (dpl_web.traffic): requests, 4xx, 5xx, upstream time;
- drift, the registry against reality: containers LXD has and the registry does not (or the
  other way round), a container stopped that its last job left running, an address other than
  the recorded one, an app's service missing, a live commit other than the last release job's,
  a domain without its vhost, a vhost DPL wrote for no app, a certificate near its expiry;
- troubles, what an app does wrong while it answers: it restarted, or it answers 5xx to many
  requests.

:func:`record` stores a round's samples (registry.samples) and the state of each target, and
returns the changes of state (an app down or back, a container stopped): the alerts.
The worker runs a round every ``DPL_MONITOR_INTERVAL`` seconds (30) and sends the alerts
where ``DPL_ALERT_URLS`` says (dpl_web.alerts); ``dpl status`` runs one on demand.
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dpl_web import traffic
from dpl_web.collection import host_client, lxd, releases
from dpl_web.jobs.kinds import RELEASE_KINDS
from dpl_web.registry import Registry

HEALTH_TIMEOUT = 5.0  # seconds one health check may take
# Rounds in a row an app must be seen up (or down) before its state changes and an alert goes:
# one failed check among good ones is not an outage (flapping is damped).
APP_CONFIRM_ROUNDS = 2
INTERVAL = 30  # seconds between two rounds of the worker's monitoring (the default)
# A state seen once and not confirmed yet is looked at again this soon (not a whole interval
# later): an outage is confirmed, and alerted, within one interval.
CONFIRM_AFTER = 5
CHECKS_AT_ONCE = 32
SERVICE_READS_AT_ONCE = 16  # containers whose services are read at the same time
SERVICE_TIMEOUT = 10.0  # seconds the exec reading a container's services may take
CERT_WARN_DAYS = 14  # a vhost's certificate expiring sooner than this is drift
# An app "answers errors" when, in one round, at least ERRORS_MIN requests got a 5xx and they
# are at least ERRORS_SHARE of its requests (a single failed request is not a trouble).
ERRORS_MIN = 5
ERRORS_SHARE = 0.1
SITES_ENABLED = "sites-enabled"  # beside the host's nginx_sites_dir (sites-available)

# Run inside a container with triples of arguments "UNIT OPENRC-SERVICE LIVE-LINK" (passed as
# "$@", never put into the script's text): for each, the init system's view of the service, in
# systemd's words (OpenRC's status and supervise-daemon's respawn count), and where the link points.
SERVICE_SCRIPT = r"""
if [ -d /run/systemd/system ]; then init=systemd; elif [ -d /run/openrc ]; then init=openrc; else exit 0; fi
while [ "$#" -ge 3 ]; do
  printf '@unit %s\n' "$1"
  if [ "$init" = systemd ]; then
    systemctl show --property=LoadState,ActiveState,NRestarts -- "$1" 2>/dev/null
  elif [ -e "/etc/init.d/$2" ]; then
    rc-service "$2" status >/dev/null 2>&1
    case $? in 0) active=active ;; 32) active=failed ;; 8) active=activating ;; *) active=inactive ;; esac
    printf 'LoadState=loaded\nActiveState=%s\nNRestarts=%s\n' "$active" \
      "$(cat "/run/openrc/options/$2/start_count" 2>/dev/null || echo 0)"
  else
    printf 'LoadState=not-found\n'
  fi
  printf '@live %s\n' "$(readlink -- "$3" 2>/dev/null)"
  shift 3
done
"""


@dataclass
class Round:
    """What one collection found."""

    at: float
    containers: dict[str, dict[str, Any]] = field(default_factory=dict)
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    drift: list[dict[str, str]] = field(default_factory=list)
    troubles: list[dict[str, str]] = field(default_factory=list)
    lxd_calls: int = 0
    previous: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)  # the last samples
    traffic_cursor: dict[str, int] | None = None  # where this round stopped reading nginx's log

    @property
    def problems(self) -> list[dict[str, str]]:
        """Drift, troubles, and every app that does not answer: what `dpl status` exits
        non-zero for."""
        down = [{"kind": "app-down", "target": f"app/{name}",
                 "message": f"{name} does not answer its health check: {app['error'] or app['http']}",
                 "fix": f"look at its journal (dpl app logs {name}), or deploy it again"}
                for name, app in self.apps.items() if not app["up"]]
        return self.drift + down + self.troubles

    def samples(self) -> dict[str, dict[str, Any]]:
        """The round as samples: ``{target: figures}``."""
        found = {f"container/{name}": figures for name, figures in self.containers.items()}
        found.update({f"app/{name}": figures for name, figures in self.apps.items()})
        return found


def state_ipv4(state: dict[str, Any]) -> str | None:
    """A container's global IPv4, from LXD's state of it."""
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
        "ipv4": state_ipv4(state),
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


def _health_checks(app: dict[str, Any], ipv4: str | None,
                   timeout: float) -> dict[str, tuple[Any, ...]]:
    """An app's checks, each a call to :func:`_get` run on its own (in parallel): inside the
    bridge network, and through the host's nginx over TLS when it has a domain here."""
    checks: dict[str, tuple[Any, ...]] = {}
    if ipv4:
        checks["inside"] = (ipv4, app["live_port"] or app["port"], app["health_path"], timeout)
    if app["domains"] and app["host"] == "local":
        checks["edge"] = ("127.0.0.1", 443, app["health_path"], timeout, app["domains"][0])
    return checks


def _app_health(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """An app's health figures from its checks' results: up when it answers inside the
    bridge network (nginx's answer is what Cloudflare sees, shown beside it)."""
    inside = results.get("inside") or {"http": None, "latency_ms": None, "error": "its container has no address"}
    figures = {"up": inside["http"] is not None and 200 <= inside["http"] < 400, **inside}
    if "edge" in results:
        figures.update(edge_http=results["edge"]["http"], edge_latency_ms=results["edge"]["latency_ms"])
    return figures


def service_unit(app: dict[str, Any], init: str = "systemd") -> str:
    """The service that serves the app now (its live slot's, or its one service's), as the
    init system names it."""
    paths = releases.AppPaths(app["project"], app["name"], init=init)
    return paths.slot(app["live_port"]).unit if app["live_port"] else paths.unit


def _release_commit(release_id: str | None) -> str | None:
    """The commit a live release id names (None when unknown)."""
    commit = releases.name_parts(release_id)[1] if release_id else ""
    return None if commit in ("", "unknown") else commit


def check_services(client: lxd.LXDClient, container: str, apps: list[dict[str, Any]],
                   timeout: float = SERVICE_TIMEOUT) -> dict[str, dict[str, Any]]:
    """Each app's service and live release in ``container``, read with ONE exec:
    ``{app: {"service": "active"|"inactive"|"failed"|"missing"|..., "restarts_total": n,
    "live_release": id}}``. Empty when it cannot be read (no systemd nor OpenRC, the container is busy):
    the monitor then says nothing rather than something wrong."""
    arguments = []
    for app in apps:
        live_link = releases.AppPaths(app["project"], app["name"]).live
        arguments += [service_unit(app), service_unit(app, "openrc"), live_link]
    try:
        code, out, _err = client.execute(container, ["sh", "-c", SERVICE_SCRIPT, "dpl-services", *arguments],
                                         timeout=timeout)
    except lxd.LXDError:
        return {}
    if code != 0:
        return {}
    by_unit = {service_unit(app): f"{app['project']}/{app['name']}" for app in apps}
    found: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for line in out.decode("utf-8", "replace").splitlines():
        if line.startswith("@unit "):
            current = found.setdefault(by_unit.get(line[6:], ""), {})
        elif current is None:
            continue
        elif line.startswith("@live "):
            current["live_release"] = os.path.basename(line[6:].rstrip("/")) or None
        elif line.startswith("LoadState="):
            current["load"] = line.partition("=")[2]
        elif line.startswith("ActiveState="):
            current["active"] = line.partition("=")[2]
        elif line.startswith("NRestarts=") and line[10:].isdigit():
            current["restarts_total"] = int(line[10:])
    services = {}
    for name, seen in found.items():
        if not name or "load" not in seen:  # the init system did not answer
            continue
        services[name] = {
            "service": "missing" if seen["load"] == "not-found" else seen.get("active", "unknown"),
            "restarts_total": seen.get("restarts_total"),
            "live_release": seen.get("live_release"),
            "live_commit": _release_commit(seen.get("live_release")),
        }
    return services


def certificate_days_left(path: Path) -> float | None:
    """Days until the certificate in ``path`` expires (None when it cannot be read)."""
    from cryptography import x509

    try:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None
    return (certificate.not_valid_after_utc - datetime.now(UTC)).total_seconds() / 86400


def _served_domains(text: str) -> tuple[list[str], list[str]]:
    """A vhost file's server names and the certificates it names."""
    names, certificates = [], []
    for line in text.splitlines():
        words = line.strip().rstrip(";").split()
        if len(words) >= 2 and words[0] == "server_name":
            names += words[1:]
        elif len(words) == 2 and words[0] == "ssl_certificate":
            certificates.append(words[1])
    return names, certificates


def vhost_drift(sites_dir: Path, apps: list[dict[str, Any]], busy: set[str] = frozenset()) -> list[dict[str, str]]:
    """On this machine's nginx: an app domain without its vhost (in sites-available and
    enabled), a vhost with DPL's marker for a domain no app has, a certificate near expiry.
    The web app's own vhost (proxied to loopback) is not an app's; an app in ``busy`` (a job
    is writing its vhosts) is not looked at for missing ones."""
    from dpl_web.collection import nginx

    drift = []
    wanted = {domain: f"{app['project']}/{app['name']}" for app in apps for domain in app["domains"]}
    enabled = sites_dir.parent / SITES_ENABLED
    for domain, app in sorted(wanted.items()):
        if f"app/{app}" in busy:
            continue
        name = nginx.file_name(domain)
        if not (sites_dir / name).is_file() or not (enabled / name).exists():
            drift.append({"kind": "vhost-missing", "target": f"app/{app}",
                          "message": f"{domain} of {app} has no enabled vhost in {sites_dir}",
                          "fix": f"deploy the app again (dpl deploy {app}): a deploy writes its vhosts"})
    try:
        files = sorted(sites_dir.glob("*.conf"))
    except OSError:
        files = []
    for path in files:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        if not text.startswith(nginx.MARKER + "\n"):
            continue  # an operator's own file
        names, certificates = _served_domains(text)
        if "127.0.0.1" in text or not names:  # the web app's own vhost
            continue
        domain = names[0]
        if domain not in wanted:
            drift.append({"kind": "vhost-orphaned", "target": f"vhost/{domain}",
                          "message": f"{path} serves {domain}, which no app has",
                          "fix": f"remove it (rm {path} {enabled / path.name}; nginx -s reload), or give "
                                 f"the domain to an app"})
            continue
        for certificate in certificates:
            days = certificate_days_left(Path(certificate))
            if days is not None and days < CERT_WARN_DAYS:
                drift.append({"kind": "certificate-expiring", "target": f"app/{wanted[domain]}",
                              "message": f"the certificate of {domain} ({certificate}) "
                                         + (f"expires in {days:.0f} days" if days > 0 else "has expired"),
                              "fix": f"deploy the app again (dpl deploy {wanted[domain]}): its vhosts get a new "
                                     "certificate when theirs expires within 30 days"})
    return drift


def _app_troubles(name: str, figures: dict[str, Any]) -> list[dict[str, str]]:
    """What an app does wrong while it may still answer its health check."""
    troubles = []
    if figures.get("restarts"):
        troubles.append({"kind": "app-restarted", "target": f"app/{name}",
                         "message": f"{name}'s service restarted {figures['restarts']} time(s) since the last round",
                         "fix": f"look at its journal (dpl app logs {name})"})
    errors, requests = figures.get("errors_5xx") or 0, figures.get("requests") or 0
    if errors >= ERRORS_MIN and errors >= ERRORS_SHARE * requests:
        troubles.append({"kind": "app-errors", "target": f"app/{name}",
                         "message": f"{name} answered {errors} of {requests} requests with a 5xx through nginx",
                         "fix": f"look at its journal (dpl app logs {name}); roll it back (dpl app rollback {name})"})
    return troubles


def collect(registry_path: Path | str, timeout: float = HEALTH_TIMEOUT) -> Round:
    """One round: every host's containers (one LXD call each), every app's health and
    service, nginx's traffic, drift and troubles."""
    with Registry.open(registry_path, create=False) as reg, reg.snapshot():
        hosts, containers, apps = reg.list_hosts(), reg.list_containers(), reg.list_apps()
        previous = reg.latest_samples([f"container/{container['name']}" for container in containers]
                                      + [f"app/{app['project']}/{app['name']}" for app in apps])
        released = reg.latest_jobs(kinds=RELEASE_KINDS, status="successful")
        # An app a job is working on may be between two states (its new release live, the job
        # not finished yet): its service, commit and vhosts are compared once the job is done.
        busy = {job["target"] for job in reg.list_jobs(status=["queued", "running"], limit=1000)}
        cursor = reg.traffic_cursor()
    found = Round(at=time.time(), previous=previous)
    recorded = {container["name"]: container for container in containers}
    by_host = {host["name"]: host for host in hosts}
    for host in hosts:
        _collect_host(found, host, recorded)
    running = {name for name, figures in found.containers.items() if figures["status"] == "Running"}
    in_container: dict[str, list[dict[str, Any]]] = {}
    for app in apps:
        if app["container"] in running:
            in_container.setdefault(app["container"], []).append(app)
    # The service reads have their own threads: an exec that is slow to start never holds up
    # a health check, nor the other way round.
    with ThreadPoolExecutor(max_workers=CHECKS_AT_ONCE) as pool, \
            ThreadPoolExecutor(max_workers=SERVICE_READS_AT_ONCE) as exec_pool:
        reads = {container: exec_pool.submit(_services_of, by_host[recorded[container]["host"]], container, mine)
                 for container, mine in in_container.items()}
        checks = {f"{app['project']}/{app['name']}": {
            where: pool.submit(_get, *arguments) for where, arguments in _health_checks(
                app, found.containers.get(app["container"], {}).get("ipv4") or recorded[app["container"]]["ipv4"],
                timeout).items()} for app in apps}
        found.apps = {name: _app_health({where: check.result() for where, check in mine.items()})
                      for name, mine in checks.items()}
        services = {app: figures for read in reads.values() for app, figures in read.result().items()}
    local_apps = [app for app in apps if app["host"] == "local"]
    nginx_figures = _read_traffic(found, cursor, local_apps)
    for app in apps:
        name = f"{app['project']}/{app['name']}"
        figures = found.apps[name]
        figures.update(nginx_figures.get(name, {}))
        if name in services:
            _add_service(found, name, figures, services[name], previous.get(f"app/{name}"),
                         None if f"app/{name}" in busy else released.get(f"app/{name}"))
        found.troubles += _app_troubles(name, figures)
    if "local" in by_host and local_apps:
        found.drift += vhost_drift(Path(by_host["local"]["nginx_sites_dir"]), local_apps, busy)
    return found


def _services_of(host: dict[str, Any], container: str, apps: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    try:
        with host_client(host, SERVICE_TIMEOUT) as client:
            return check_services(client, container, apps)
    except lxd.LXDError:
        return {}


def _add_service(found: Round, name: str, figures: dict[str, Any], service: dict[str, Any],
                 previous: dict[str, Any] | None, release_job: dict[str, Any] | None) -> None:
    """An app's service figures, and the drift they show against ``release_job``, the last
    job that put a release live (None: never deployed, or a job is at work on it)."""
    total = service["restarts_total"]
    before = (previous or {}).get("restarts_total")
    figures.update(service=service["service"], restarts_total=total, live_release=service["live_release"],
                   live_commit=service["live_commit"],
                   restarts=None if total is None or before is None else (total - before if total >= before else total))
    if service["service"] == "missing" and release_job:
        found.drift.append({"kind": "service-missing", "target": f"app/{name}",
                            "message": f"{name}'s service is not in its container",
                            "fix": f"deploy it again (dpl deploy {name})"})
    expected = ((release_job or {}).get("commit") or "")[:12]
    if expected and service["live_commit"] and service["live_commit"] != expected:
        found.drift.append({"kind": "commit-differs", "target": f"app/{name}",
                            "message": f"{name} serves commit {service['live_commit']}, its last "
                                       f"{release_job['kind']} (job {release_job['id']}) put {expected} live",
                            "fix": f"deploy it again (dpl deploy {name}), or roll it back (dpl app rollback {name})"})


def _read_traffic(found: Round, cursor: dict[str, int] | None,
                  apps: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """This round's nginx figures of the apps with domains on this machine."""
    if not any(app["domains"] for app in apps):
        return {}
    path = traffic.log_path()
    try:
        lines, found.traffic_cursor = traffic.read_new(path, cursor)
    except OSError as exc:
        found.drift.append({"kind": "traffic-log-missing", "target": "host/local",
                            "message": f"nginx's traffic log {path} cannot be read: {exc.strerror or exc}",
                            "fix": "run playbooks/host.yml (it sets the log up), or set DPL_TRAFFIC_LOG to "
                                   "where nginx writes it"})
        return {}
    return traffic.per_app(traffic.count(lines), apps)


def _collect_host(found: Round, host: dict[str, Any], recorded: dict[str, dict[str, Any]]) -> None:
    """One host's containers, in one LXD call, and their drift."""
    previous = found.previous
    try:
        with host_client(host, 10) as client:
            instances = client.get("/1.0/instances", {"recursion": 2})
            found.lxd_calls += 1
    except lxd.LXDError as exc:
        found.drift.append({"kind": "host-unreachable", "target": f"host/{host['name']}",
                            "message": f"LXD on {host['name']} cannot be reached: {exc}",
                            "fix": "see that LXD runs there (dpl's health page says more)"})
        return
    seen = set()
    for instance in instances:
        name = instance["name"]
        if name not in recorded or recorded[name]["host"] != host["name"]:
            found.drift.append({"kind": "unknown-container", "target": f"container/{name}",
                                "message": f"LXD on {host['name']} has a container {name} that the registry "
                                           "does not know",
                                "fix": f"import it (dpl container import {name}), or delete it"})
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
                                "fix": f"make it again from its record (dpl container start {name}, then deploy its "
                                       f"apps), or remove the record (dpl container remove {name} --cascade)"})


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
        # Drift and troubles: an alert when one appears, and when it clears.
        current = set()
        for category, problems in (("drift", found.drift), ("trouble", found.troubles)):
            for problem in problems:
                key = f"{category}/{problem['kind']}/{problem['target']}"
                current.add(key)
                was = reg.set_state(key, "present", problem["message"])
                if was is not None or key not in known:
                    alerts.append({"target": problem["target"], "state": problem["kind"], "was": "",
                                   "message": problem["message"]})
        for key, state in known.items():
            category, _sep, rest = key.partition("/")
            if category in ("drift", "trouble") and state["state"] == "present" and key not in current:
                reg.set_state(key, "cleared")
                kind, _sep, target = rest.partition("/")
                alerts.append({"target": target, "state": "cleared", "was": kind,
                               "message": f"cleared: {state['detail']}"})
        if found.traffic_cursor is not None:
            reg.set_traffic_cursor(found.traffic_cursor)
        for alert in alerts:  # each one kept (the dashboard shows them) and numbered for its sending
            alert["id"] = reg.add_alert(alert["target"], alert["state"], alert["message"])
    return alerts
