"""The containers, each on an LXD host at a fixed address of its bridge."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from typing import Any

from dpl_web.collection import validation
from dpl_web.errors import Conflict, NotFound, ValidationError
from dpl_web.registry.base import RegistryBase
from dpl_web.registry.fields import CONTAINER_FIELDS, _check
from dpl_web.registry.records import _CONTAINERS_SQL, _container_dict, _now

# Containers get addresses from this offset in their host's bridge network up: the first
# few are left for the host and whatever else the operator puts on the bridge.
FIRST_CONTAINER_ADDRESS = 10


class ContainersTable(RegistryBase):
    """The containers, each on an LXD host at a fixed address of its bridge."""

    # -- containers --------------------------------------------------------------------

    def list_containers(self, host: str | None = None) -> list[dict[str, Any]]:
        with self.snapshot() as conn:
            if host is not None:
                self._id("host", host)
                rows = conn.execute(f"{_CONTAINERS_SQL} WHERE h.name = ? ORDER BY c.name", (host,))
            else:
                rows = conn.execute(f"{_CONTAINERS_SQL} ORDER BY c.name")
            containers = [_container_dict(row) for row in rows]
            projects: dict[str, list[str]] = {}
            for row in conn.execute("SELECT p.name, c.name AS container FROM project p "
                                    "JOIN container c ON c.id = p.container_id ORDER BY p.name"):
                projects.setdefault(row["container"], []).append(row["name"])
        for container in containers:
            container["projects"] = projects.get(container["name"], [])
        return containers

    def get_container(self, name: str) -> dict[str, Any]:
        with self.snapshot() as conn:
            row = self._one(f"{_CONTAINERS_SQL} WHERE c.name = ?", (name,))
            if row is None:
                raise NotFound("container", name)
            container = _container_dict(row)
            container["projects"] = [r["name"] for r in conn.execute(
                "SELECT name FROM project WHERE container_id = ? ORDER BY name", (row["id"],))]
        return container

    def _free_ipv4(self, host_id: int, bridge_ipv4: str, avoid: Iterable[str] = ()) -> str:
        interface = ipaddress.IPv4Interface(bridge_ipv4)
        used = {row["ipv4"] for row in self.conn.execute(
            "SELECT ipv4 FROM container WHERE host_id = ?", (host_id,))}
        used.update(avoid)
        used.add(str(interface.ip))
        network = interface.network
        first = int(network.network_address) + FIRST_CONTAINER_ADDRESS
        for number in range(first, int(network.broadcast_address)):
            address = str(ipaddress.IPv4Address(number))
            if address not in used:
                return address
        raise Conflict(f"the bridge network {network} has no free address from .{FIRST_CONTAINER_ADDRESS} "
                       "up: widen the host's bridge_ipv4 or remove containers")

    def _check_ipv4(self, host_id: int, bridge_ipv4: str, ipv4: str, container: str) -> None:
        interface = ipaddress.IPv4Interface(bridge_ipv4)
        validation.ipv4(ipv4, "ipv4", network=str(interface.network))
        if ipv4 == str(interface.ip):
            raise ValidationError("ipv4", ipv4, "is the host's own address on the bridge")
        row = self._one("SELECT name FROM container WHERE host_id = ? AND ipv4 = ? AND name != ?",
                        (host_id, ipv4, container))
        if row is not None:
            raise Conflict(f"ipv4 {ipv4} is already the address of container {row['name']!r}: "
                           "choose another, or leave it out to get the next free one")

    def add_container(self, name: str, host: str = "local", avoid_ipv4: Iterable[str] = (),
                      **fields: Any) -> dict[str, Any]:
        """Record a container on ``host``. Fields: image, profiles, cpu, memory, disk, ipv4
        (default: the lowest free address from .10 up in the host's bridge network, skipping
        ``avoid_ipv4``: addresses LXD has given out that the registry does not know), notes."""
        validation.container_name(name, "container")
        validation.name(host, "host")
        values = _check("container", fields, CONTAINER_FIELDS, defaults=True)
        with self.transaction() as conn:
            if self._one("SELECT 1 FROM container WHERE name = ?", (name,)):
                raise Conflict(f"container {name!r} already exists", "edit it instead", "edit")
            host_row = self._one("SELECT id, bridge_ipv4 FROM host WHERE name = ?", (host,))
            if host_row is None:
                raise NotFound("host", host, "list the hosts to see which exist (initialising the registry "
                                             "records the local one)")
            if values["ipv4"] is None:
                values["ipv4"] = self._free_ipv4(host_row["id"], host_row["bridge_ipv4"], avoid_ipv4)
            else:
                self._check_ipv4(host_row["id"], host_row["bridge_ipv4"], values["ipv4"], name)
            values["profiles"] = json.dumps(values["profiles"])
            now = _now()
            columns = ["name", "host_id", *values, "created_at", "updated_at"]
            conn.execute(
                f"INSERT INTO container ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                (name, host_row["id"], *values.values(), now, now))
        return self.get_container(name)

    def update_container(self, name: str, **changes: Any) -> dict[str, Any]:
        """Change some fields of a container (not its name or host: those are its identity in
        LXD; remove and add it instead). ``cpu``, ``memory`` and ``disk`` accept None to
        remove the limit."""
        validation.container_name(name, "container")
        if changes.get("ipv4", "") is None:
            raise ValidationError("ipv4", None, "must be given (a container always has an address)")
        values = _check("container", changes, CONTAINER_FIELDS, defaults=False)
        with self.transaction() as conn:
            row = self._one("SELECT c.*, h.bridge_ipv4 FROM container c JOIN host h ON h.id = c.host_id "
                            "WHERE c.name = ?", (name,))
            if row is None:
                raise NotFound("container", name)
            if "ipv4" in values and values["ipv4"] != row["ipv4"]:
                self._check_ipv4(row["host_id"], row["bridge_ipv4"], values["ipv4"], name)
            if "profiles" in values:
                values["profiles"] = json.dumps(values["profiles"])
            self._write_changes(conn, "container", "name", name, dict(row), values)
        return self.get_container(name)

    def set_container_status(self, name: str, status: str, ipv4: str | None = None) -> dict[str, Any]:
        """Record what LXD says about a container (the container playbooks call this):
        its status (Running, Stopped, absent, ...) and, when given, the address it has."""
        validation.container_name(name, "container")
        validation.token(status, "status")
        if ipv4 is not None:
            validation.ipv4(ipv4, "ipv4")
        with self.transaction() as conn:
            row = self._one("SELECT c.*, h.bridge_ipv4 FROM container c JOIN host h ON h.id = c.host_id "
                            "WHERE c.name = ?", (name,))
            if row is None:
                raise NotFound("container", name)
            if ipv4 is not None and ipv4 != row["ipv4"]:
                self._check_ipv4(row["host_id"], row["bridge_ipv4"], ipv4, name)
            conn.execute("UPDATE container SET status = ?, status_at = ?, ipv4 = ? WHERE id = ?",
                         (status, _now(), ipv4 or row["ipv4"], row["id"]))
        return self.get_container(name)

    def remove_container(self, name: str, cascade: bool = False) -> dict[str, list[str]]:
        """Remove a container's record; with ``cascade``, also its projects and their apps.
        Returns what was removed. LXD itself is not touched (the container playbook is)."""
        validation.container_name(name, "container")
        with self.transaction() as conn:
            container_id = self._id("container", name)
            projects = [row["name"] for row in conn.execute(
                "SELECT name FROM project WHERE container_id = ? ORDER BY name", (container_id,))]
            if projects and not cascade:
                raise Conflict(f"container {name!r} still has projects: {', '.join(projects)}",
                               "remove them first, or ask for a cascading removal to remove them and their apps "
                               "too", "cascade")
            removed: dict[str, list[str]] = {"containers": [name], "projects": [], "apps": []}
            for project in projects:
                self._merge(removed, self.remove_project(project, cascade=True))
            conn.execute("DELETE FROM container WHERE id = ?", (container_id,))
        return removed
