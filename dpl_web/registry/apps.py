"""The apps of the projects, with their domains and environment; and the inventory."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from dpl_web.collection import validation
from dpl_web.errors import Conflict, NotFound
from dpl_web.registry.base import RegistryBase
from dpl_web.registry.fields import APP_FIELDS, _check, _env_changes, _ref_column
from dpl_web.registry.records import _APPS_SQL, _CONTAINERS_SQL, _app_dict, _container_dict, _host_dict, _now


class AppsTable(RegistryBase):
    """The apps of the projects, with their domains and environment; and the inventory."""

    # -- apps --------------------------------------------------------------------------

    def _load_apps(self, where: str = "", params: tuple = ()) -> list[dict[str, Any]]:
        """Apps matching ``where`` (on the aliases of :data:`_APPS_SQL`), with their domains and
        environment: three queries, however many apps. Secret values are not read."""
        with self.snapshot() as conn:
            rows = conn.execute(f"{_APPS_SQL} {where} ORDER BY p.name, a.name", params).fetchall()
            ids = f"SELECT a.id FROM app a JOIN project p ON p.id = a.project_id " \
                  f"JOIN container c ON c.id = p.container_id JOIN host h ON h.id = c.host_id {where}"
            domains: dict[int, list[str]] = {}
            for row in conn.execute(f"SELECT app_id, domain FROM app_domain WHERE app_id IN ({ids}) "
                                    "ORDER BY app_id, position", params):
                domains.setdefault(row[0], []).append(row[1])
            env: dict[int, dict[str, str]] = {}
            secret: dict[int, list[str]] = {}
            for row in conn.execute(
                    "SELECT app_id, name, secret, CASE WHEN secret THEN NULL ELSE value END "
                    f"FROM app_env WHERE app_id IN ({ids}) ORDER BY app_id, name", params):
                if row[2]:
                    secret.setdefault(row[0], []).append(row[1])
                else:
                    env.setdefault(row[0], {})[row[1]] = row[3]
        return [_app_dict(row, domains.get(row["id"], []), env.get(row["id"], {}), secret.get(row["id"], []))
                for row in rows]

    def list_apps(self, project: str | None = None, container: str | None = None) -> list[dict[str, Any]]:
        """Apps, optionally of one project or one container. Secret variables by name only."""
        clauses, params = [], []
        with self.snapshot():
            if project is not None:
                self._id("project", project)
                clauses.append("p.name = ?")
                params.append(project)
            if container is not None:
                self._id("container", container)
                clauses.append("c.name = ?")
                params.append(container)
            where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
            return self._load_apps(where, tuple(params))

    def get_app(self, project: str, name: str) -> dict[str, Any]:
        """One app. ``env`` holds the plain variables, ``secret_env`` the secret ones' names."""
        apps = self._load_apps("WHERE p.name = ? AND a.name = ?", (project, name))
        if not apps:
            with self.snapshot():
                self._id("project", project)
            raise NotFound("app", f"{project}/{name}", f"list the apps of project {project} to see which exist")
        return apps[0]

    def _check_port(self, container_id: int, port: int, exclude_app_id: int | None, what: str) -> None:
        """No two apps of a container share a port: each has all of :func:`validation.app_ports`."""
        span = len(validation.app_ports(port))
        row = self._one(
            "SELECT p.name AS project, a.name AS app, a.port, c.name AS container FROM app a "
            "JOIN project p ON p.id = a.project_id JOIN container c ON c.id = p.container_id "
            "WHERE p.container_id = ? AND abs(a.port - ?) < ? AND a.id IS NOT ?",
            (container_id, port, span, exclude_app_id))
        if row is not None:
            raise Conflict(f"{what}: port {port} (the app uses ports {port}-{port + span - 1}) overlaps "
                           f"ports {row['port']}-{row['port'] + span - 1} of app {row['project']}/{row['app']} "
                           f"in container {row['container']!r}: choose another port")

    def set_live_port(self, project: str, name: str, port: int) -> bool:
        """Record which port serves the app now (a job's result); True when it changed."""
        validation.port(port, "live_port")
        with self.transaction() as conn:
            app_id = self._app_id(project, name)
            return conn.execute("UPDATE app SET live_port = ? WHERE id = ? AND live_port IS NOT ?",
                                (port, app_id, port)).rowcount > 0

    def _check_domains(self, domains: list[str], exclude_app_id: int | None, what: str) -> None:
        if not domains:
            return
        marks = ", ".join("?" * len(domains))
        row = self._one(
            "SELECT d.domain, p.name AS project, a.name AS app FROM app_domain d JOIN app a ON a.id = d.app_id "
            f"JOIN project p ON p.id = a.project_id WHERE d.domain IN ({marks}) AND d.app_id IS NOT ?",
            (*domains, exclude_app_id))
        if row is not None:
            raise Conflict(f"{what}: domain {row['domain']} is already served by app "
                           f"{row['project']}/{row['app']}; a domain belongs to one app")

    def _write_env(self, conn: sqlite3.Connection, app_id: int, plain: dict, secret: dict,
                   unset: list) -> bool:
        """Set and remove variables, writing only what differs; returns whether anything did."""
        current = {row[0]: (row[1], row[2]) for row in conn.execute(
            "SELECT name, value, secret FROM app_env WHERE app_id = ?", (app_id,))}
        wanted = [(name, value, 0) for name, value in plain.items()]
        wanted += [(name, value, 1) for name, value in secret.items()]
        changed = False
        for name, value, flag in wanted:
            if current.get(name) != (value, flag):
                conn.execute("INSERT INTO app_env (app_id, name, value, secret) VALUES (?, ?, ?, ?) "
                             "ON CONFLICT (app_id, name) DO UPDATE SET value = excluded.value, "
                             "secret = excluded.secret", (app_id, name, value, flag))
                changed = True
        for name in unset:
            if name in current:
                conn.execute("DELETE FROM app_env WHERE app_id = ? AND name = ?", (app_id, name))
                changed = True
        return changed

    def _write_domains(self, conn: sqlite3.Connection, app_id: int, domains: list[str]) -> None:
        conn.execute("DELETE FROM app_domain WHERE app_id = ?", (app_id,))
        conn.executemany("INSERT INTO app_domain (domain, app_id, position) VALUES (?, ?, ?)",
                         [(domain, app_id, position) for position, domain in enumerate(domains)])

    def add_app(self, project: str, name: str, repo: str, *, env: Mapping[str, Any] | None = None,
                secret_env: Mapping[str, Any] | None = None, container: str | None = None,
                **fields: Any) -> dict[str, Any]:
        """Record an app in ``project``.

        Fields: ref, deploy_script, start_command, port (unique in its container), domains
        (each served by one app only), health_path, keep_releases, keep_backups, notes.
        ``env`` maps NAME to value; ``secret_env`` likewise for values never shown back.
        With ``container``, a missing project is created there (an existing project must
        already be in that container).
        """
        validation.name(project, "project")
        validation.app_name(name, "app")
        if container is not None:
            validation.container_name(container, "container")
        values = _ref_column(_check("app", dict(fields, repo=repo), APP_FIELDS, defaults=True))
        plain, secret, _unset = _env_changes(env, secret_env, None)
        domains = values.pop("domains")
        what = f"app {project}/{name}"
        with self.transaction() as conn:
            row = self._one("SELECT p.id, p.container_id, c.name AS container FROM project p "
                            "JOIN container c ON c.id = p.container_id WHERE p.name = ?", (project,))
            if row is None:
                if container is None:
                    raise NotFound("project", project, "record the project first, or name a container to "
                                                       "create it in with the app", "give_container")
                self.add_project(project, container)
                row = self._one("SELECT p.id, p.container_id, c.name AS container FROM project p "
                                "JOIN container c ON c.id = p.container_id WHERE p.name = ?", (project,))
            elif container is not None and row["container"] != container:
                raise Conflict(f"project {project!r} is in container {row['container']!r}, not {container!r}")
            if self._one("SELECT 1 FROM app WHERE project_id = ? AND name = ?", (row["id"], name)):
                raise Conflict(f"{what} already exists", "edit it instead", "edit")
            self._check_port(row["container_id"], values["port"], None, what)
            self._check_domains(domains, None, what)
            now = _now()
            columns = ["project_id", "name", *values, "created_at", "updated_at"]
            cursor = conn.execute(
                f"INSERT INTO app ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                (row["id"], name, *values.values(), now, now))
            self._write_domains(conn, cursor.lastrowid, domains)
            self._write_env(conn, cursor.lastrowid, plain, secret, [])
        return self.get_app(project, name)

    def update_app(self, project: str, name: str, *, env: Mapping[str, Any] | None = None,
                   secret_env: Mapping[str, Any] | None = None, unset_env: list[str] | None = None,
                   **changes: Any) -> dict[str, Any]:
        """Change some fields of an app. ``domains`` replaces the list; ``env`` and
        ``secret_env`` set (or re-classify) the variables they name, ``unset_env`` removes
        variables; others are kept. ``deploy_script=None`` clears the deploy script."""
        validation.name(project, "project")
        validation.app_name(name, "app")
        values = _ref_column(_check("app", changes, APP_FIELDS, defaults=False))
        plain, secret, unset = _env_changes(env, secret_env, unset_env)
        domains = values.pop("domains", None)
        what = f"app {project}/{name}"
        with self.transaction() as conn:
            app_id = self._app_id(project, name)
            row = self._one("SELECT a.*, p.container_id FROM app a JOIN project p ON p.id = a.project_id "
                            "WHERE a.id = ?", (app_id,))
            if "port" in values and values["port"] != row["port"]:
                self._check_port(row["container_id"], values["port"], app_id, what)
                # The live port was one of the old ports: unknown until the next deploy.
                conn.execute("UPDATE app SET live_port = NULL WHERE id = ?", (app_id,))
            changed = self._write_changes(conn, "app", "id", app_id, dict(row), values)
            if domains is not None:
                current = [r[0] for r in conn.execute(
                    "SELECT domain FROM app_domain WHERE app_id = ? ORDER BY position", (app_id,))]
                if domains != current:
                    self._check_domains(domains, app_id, what)
                    self._write_domains(conn, app_id, domains)
                    changed = True
            if self._write_env(conn, app_id, plain, secret, unset):
                changed = True
            if changed:
                conn.execute("UPDATE app SET updated_at = ? WHERE id = ?", (_now(), app_id))
        return self.get_app(project, name)

    def remove_app(self, project: str, name: str) -> dict[str, list[str]]:
        """Remove an app's record (its domains and variables with it)."""
        validation.name(project, "project")
        validation.app_name(name, "app")
        with self.transaction() as conn:
            conn.execute("DELETE FROM app WHERE id = ?", (self._app_id(project, name),))
        return {"apps": [f"{project}/{name}"]}

    def app_secrets(self, project: str, name: str) -> dict[str, str]:
        """The app's secret variables with their values. Only for tasks that hand them to the
        app (with ``no_log``); never print or log the result."""
        validation.name(project, "project")
        validation.app_name(name, "app")
        with self.snapshot() as conn:
            app_id = self._app_id(project, name)
            return {row[0]: row[1] for row in conn.execute(
                "SELECT name, value FROM app_env WHERE app_id = ? AND secret = 1 ORDER BY name", (app_id,))}

    def get_secret(self, project: str, name: str, variable: str) -> str:
        """One secret variable's value (see :meth:`app_secrets`)."""
        validation.env_name(variable, "variable")
        secrets = self.app_secrets(project, name)
        if variable not in secrets:
            raise NotFound("secret variable", variable,
                           f"app {project}/{name} has {', '.join(secrets) or 'no secret variables'}; set it "
                           "as a secret variable of the app", "edit")
        return secrets[variable]

    # -- the inventory -----------------------------------------------------------------

    def inventory(self, container: str | None = None) -> dict[str, Any]:
        """Everything the inventory plugin needs, in six queries whatever the size:
        ``{"hosts": {name: host}, "containers": [container + {"projects": {name: {"name",
        "apps": {name: app}}}}]}``. JSON-serialisable (it is what the inventory caches), and
        free of secret values. With ``container``, only that container and its host (a job
        on one app reads no more)."""
        where, params = ("WHERE c.name = ?", (container,)) if container is not None else ("", ())
        with self.snapshot() as conn:
            containers = [_container_dict(row) for row in conn.execute(
                f"{_CONTAINERS_SQL} {where} ORDER BY c.name", params)]
            hosts = {row["name"]: _host_dict(row) for row in conn.execute("SELECT * FROM host ORDER BY name")
                     if container is None or row["name"] in {c["host"] for c in containers}}
            by_name = {container["name"]: container for container in containers}
            for record in containers:
                record["projects"] = {}
            for row in conn.execute("SELECT p.name, c.name AS container FROM project p "
                                    f"JOIN container c ON c.id = p.container_id {where} ORDER BY p.name", params):
                by_name[row["container"]]["projects"][row["name"]] = {"name": row["name"], "apps": {}}
            for app in self._load_apps(where, params):
                by_name[app["container"]]["projects"][app["project"]]["apps"][app["name"]] = app
        return {"hosts": hosts, "containers": containers}
