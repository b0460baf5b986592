"""The LXD hosts DPL manages containers on."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from dpl_web.collection import validation
from dpl_web.errors import Conflict, NotFound, ValidationError
from dpl_web.registry.base import RegistryBase
from dpl_web.registry.fields import HOST_FIELDS, _check
from dpl_web.registry.records import _host_dict, _now


class HostsTable(RegistryBase):
    """The LXD hosts DPL manages containers on."""

    # -- hosts -------------------------------------------------------------------------

    def list_hosts(self) -> list[dict[str, Any]]:
        return [_host_dict(row) for row in self.conn.execute("SELECT * FROM host ORDER BY name")]

    def get_host(self, name: str) -> dict[str, Any]:
        row = self._one("SELECT * FROM host WHERE name = ?", (name,))
        if row is None:
            raise NotFound("host", name, "list the hosts to see which exist (initialising the registry records "
                                         "the local one)")
        return _host_dict(row)

    @staticmethod
    def _check_host(host: Mapping[str, Any]) -> None:
        if host["endpoint"].startswith("https://"):
            missing = [key for key in ("client_cert", "client_key", "server_cert") if not host.get(key)]
            if missing:
                raise ValidationError(
                    missing[0], None,
                    "an https endpoint needs client_cert, client_key and server_cert (the pinned "
                    "certificate of the remote LXD)")

    def add_host(self, name: str, **fields: Any) -> dict[str, Any]:
        """Record an LXD host. Fields: see :data:`HOST_FIELDS` (all optional)."""
        validation.name(name, "host")
        values = _check("host", fields, HOST_FIELDS, defaults=True)
        self._check_host(values)
        with self.transaction() as conn:
            if self._one("SELECT 1 FROM host WHERE name = ?", (name,)):
                raise Conflict(f"host {name!r} already exists", "edit it instead", "edit")
            now = _now()
            columns = ["name", *values, "created_at", "updated_at"]
            conn.execute(f"INSERT INTO host ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                         (name, *values.values(), now, now))
        return self.get_host(name)

    def update_host(self, name: str, **changes: Any) -> dict[str, Any]:
        """Change some fields of a host. Changing ``bridge_ipv4`` is refused while a
        container's address would fall outside the new network."""
        validation.name(name, "host")
        values = _check("host", changes, HOST_FIELDS, defaults=False)
        with self.transaction() as conn:
            current = self.get_host(name)
            merged = dict(current, **values)
            self._check_host(merged)
            if "bridge_ipv4" in values and values["bridge_ipv4"] != current["bridge_ipv4"]:
                self._check_bridge_change(name, values["bridge_ipv4"])
            self._write_changes(conn, "host", "name", name, current, values)
        return self.get_host(name)

    def _check_bridge_change(self, host: str, bridge_ipv4: str) -> None:
        interface = ipaddress.IPv4Interface(bridge_ipv4)
        outside = [
            f"{row['name']} ({row['ipv4']})"
            for row in self.conn.execute(
                "SELECT c.name, c.ipv4 FROM container c JOIN host h ON h.id = c.host_id WHERE h.name = ?",
                (host,))
            if ipaddress.IPv4Address(row["ipv4"]) not in interface.network
            or ipaddress.IPv4Address(row["ipv4"]) in (interface.ip, interface.network.broadcast_address)]
        if outside:
            raise Conflict(f"host {host!r}: these containers' addresses do not fit {bridge_ipv4}: "
                           f"{', '.join(outside)}", "give those containers new addresses first")

    def ensure_host(self, name: str, **fields: Any) -> tuple[dict[str, Any], bool]:
        """Make sure a host exists with the given fields (others keep their values, or the
        defaults when it is new). Returns the host and whether anything changed."""
        with self.transaction():
            try:
                current = self.get_host(name)
            except NotFound:
                return self.add_host(name, **fields), True
            wanted = _check("host", fields, HOST_FIELDS, defaults=False)
            if all(current[key] == value for key, value in wanted.items()):
                return current, False
            return self.update_host(name, **wanted), True

    def remove_host(self, name: str, cascade: bool = False) -> dict[str, list[str]]:
        """Remove a host's record; with ``cascade``, also its containers, their projects and
        apps. Returns what was removed. LXD itself is not touched."""
        validation.name(name, "host")
        with self.transaction() as conn:
            host_id = self._id("host", name)
            containers = [row["name"] for row in conn.execute(
                "SELECT name FROM container WHERE host_id = ? ORDER BY name", (host_id,))]
            if containers and not cascade:
                raise Conflict(f"host {name!r} still has containers: {', '.join(containers)}",
                               "remove them first, or ask for a cascading removal to remove their records too",
                               "cascade")
            removed: dict[str, list[str]] = {"hosts": [name], "containers": [], "projects": [], "apps": []}
            for container in containers:
                self._merge(removed, self.remove_container(container, cascade=True))
            conn.execute("DELETE FROM host WHERE id = ?", (host_id,))
        return removed
