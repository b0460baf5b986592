"""The projects, each in one container (several may share one)."""

from __future__ import annotations

from typing import Any

from dpl_web.collection import validation
from dpl_web.errors import Conflict, NotFound
from dpl_web.registry.base import RegistryBase
from dpl_web.registry.fields import PROJECT_FIELDS, _check
from dpl_web.registry.records import _now, _project_dict


class ProjectsTable(RegistryBase):
    """The projects, each in one container (several may share one)."""

    # -- projects ----------------------------------------------------------------------

    def list_projects(self, container: str | None = None) -> list[dict[str, Any]]:
        with self.snapshot() as conn:
            sql = ("SELECT p.*, c.name AS container FROM project p JOIN container c ON c.id = p.container_id")
            if container is not None:
                self._id("container", container)
                rows = conn.execute(f"{sql} WHERE c.name = ? ORDER BY p.name", (container,)).fetchall()
            else:
                rows = conn.execute(f"{sql} ORDER BY p.name").fetchall()
            apps: dict[int, list[str]] = {}
            for row in conn.execute("SELECT project_id, name FROM app ORDER BY name"):
                apps.setdefault(row["project_id"], []).append(row["name"])
        return [_project_dict(row, apps.get(row["id"], [])) for row in rows]

    def get_project(self, name: str) -> dict[str, Any]:
        for project in self.list_projects():
            if project["name"] == name:
                return project
        raise NotFound("project", name)

    def add_project(self, name: str, container: str, **fields: Any) -> dict[str, Any]:
        """Record a project in a container (several projects may share one)."""
        validation.name(name, "project")
        validation.container_name(container, "container")
        values = _check("project", fields, PROJECT_FIELDS, defaults=True)
        with self.transaction() as conn:
            existing = self._one("SELECT c.name AS container FROM project p JOIN container c "
                                 "ON c.id = p.container_id WHERE p.name = ?", (name,))
            if existing:
                raise Conflict(f"project {name!r} already exists (in container {existing['container']!r}); "
                               "project names are unique across containers")
            container_id = self._id("container", container)
            now = _now()
            conn.execute("INSERT INTO project (name, container_id, notes, created_at, updated_at) "
                         "VALUES (?, ?, ?, ?, ?)", (name, container_id, values["notes"], now, now))
        return self.get_project(name)

    def update_project(self, name: str, container: str | None = None, **changes: Any) -> dict[str, Any]:
        """Change a project's notes, or move its record to another ``container`` (the apps'
        ports must be free there; the files are not moved: deploy again)."""
        validation.name(name, "project")
        values = _check("project", changes, PROJECT_FIELDS, defaults=False)
        if container is not None:
            validation.container_name(container, "container")
        with self.transaction() as conn:
            row = self._one("SELECT * FROM project WHERE name = ?", (name,))
            if row is None:
                raise NotFound("project", name)
            if container is not None:
                container_id = self._id("container", container)
                if container_id != row["container_id"]:
                    for app in conn.execute("SELECT name, port FROM app WHERE project_id = ?", (row["id"],)):
                        self._check_port(container_id, app["port"], exclude_app_id=None,
                                         what=f"app {name}/{app['name']}")
                    values["container_id"] = container_id
            self._write_changes(conn, "project", "name", name, dict(row), values)
        return self.get_project(name)

    def remove_project(self, name: str, cascade: bool = False) -> dict[str, list[str]]:
        """Remove a project's record; with ``cascade``, also its apps. Returns what was removed."""
        validation.name(name, "project")
        with self.transaction() as conn:
            project_id = self._id("project", name)
            apps = [row["name"] for row in conn.execute(
                "SELECT name FROM app WHERE project_id = ? ORDER BY name", (project_id,))]
            if apps and not cascade:
                raise Conflict(f"project {name!r} still has apps: {', '.join(apps)}",
                               "remove them first, or ask for a cascading removal to remove them too", "cascade")
            conn.execute("DELETE FROM app WHERE project_id = ?", (project_id,))
            conn.execute("DELETE FROM project WHERE id = ?", (project_id,))
        return {"projects": [name], "apps": [f"{name}/{app}" for app in apps]}
