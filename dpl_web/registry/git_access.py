"""Private repositories: each project's deploy key and token, and the git hosts' keys pinned
on first use (the tables project_git and git_host_key)."""

from __future__ import annotations

from typing import Any

from dpl_web.collection import git_access, validation
from dpl_web.registry.base import RegistryBase
from dpl_web.registry.records import _now

_WHEN = {"type": ["string", "null"]}
# The JSON shape of :meth:`GitAccessTable.git_access` (the API's "git_access" schema).
GIT_ACCESS_SCHEMA = {
    "type": "object", "required": ["project", "deploy_key", "token", "host_keys"], "properties": {
        "project": {"type": "string"},
        "deploy_key": {"type": ["object", "null"], "description": "the public half only", "properties": {
            "public": {"type": "string"}, "fingerprint": {"type": "string"}, "created_at": _WHEN}},
        "token": {"type": ["object", "null"], "description": "whether one is set: never its value",
                  "properties": {"user": {"type": "string"}, "set_at": _WHEN}},
        "host_keys": {"type": "array", "items": {"type": "object", "properties": {
            "host": {"type": "string"}, "type": {"type": "string"}, "fingerprint": {"type": "string"},
            "pinned_at": {"type": "string"}}}},
    }}


class GitAccessTable(RegistryBase):
    """How a project's containers reach its private repositories. The private key and the
    token come out only through :meth:`git_credentials`, for the deploy task; every other
    method reports the public half, fingerprints and dates."""

    def git_access(self, project: str) -> dict[str, Any]:
        """What may be shown: the public key and its fingerprint, the pinned host keys, and
        whether a token is set (with its user)."""
        with self.snapshot():
            project_id = self._id("project", validation.name(project, "project"))
            row = self._one("SELECT * FROM project_git WHERE project_id = ?", (project_id,))
            pins = self.conn.execute("SELECT host, type, key, pinned_at FROM git_host_key WHERE project_id = ? "
                                     "ORDER BY host, type", (project_id,)).fetchall()
        key = None
        if row is not None and row["deploy_key_public"]:
            key = {"public": row["deploy_key_public"], "created_at": row["deploy_key_at"],
                   "fingerprint": git_access.fingerprint(row["deploy_key_public"].split()[1])}
        token = None
        if row is not None and row["token"]:
            token = {"user": row["token_user"] or git_access.DEFAULT_TOKEN_USER, "set_at": row["token_at"]}
        return {"project": project, "deploy_key": key, "token": token,
                "host_keys": [{"host": pin["host"], "type": pin["type"], "pinned_at": pin["pinned_at"],
                               "fingerprint": git_access.fingerprint(pin["key"])} for pin in pins]}

    def git_credentials(self, project: str) -> dict[str, Any]:
        """The deploy task's ``git_access``: the private key and the token included. Only for
        a task that takes them as no_log parameters; never print or log it."""
        with self.snapshot():
            project_id = self._id("project", validation.name(project, "project"))
            row = self._one("SELECT * FROM project_git WHERE project_id = ?", (project_id,))
            pins = self.conn.execute("SELECT host, type, key FROM git_host_key WHERE project_id = ? "
                                     "ORDER BY host, type", (project_id,)).fetchall()
        access: dict[str, Any] = {"known_hosts": [f"{pin['host']} {pin['type']} {pin['key']}" for pin in pins]}
        if row is not None:
            if row["deploy_key"]:
                access["ssh_key"] = row["deploy_key"]
            if row["token"]:
                access["token"] = row["token"]
                access["token_user"] = row["token_user"] or git_access.DEFAULT_TOKEN_USER
        return access

    def _set_git(self, project: str, **values: Any) -> None:
        with self.transaction() as conn:
            project_id = self._id("project", validation.name(project, "project"))
            conn.execute("INSERT OR IGNORE INTO project_git (project_id) VALUES (?)", (project_id,))
            assignments = ", ".join(f"{column} = ?" for column in values)
            conn.execute(f"UPDATE project_git SET {assignments} WHERE project_id = ?",  # noqa: S608 - fixed names
                         (*values.values(), project_id))

    def set_deploy_key(self, project: str, private: str, public: str) -> None:
        """Keep a new deploy key (a rotation replaces the old one)."""
        self._set_git(project, deploy_key=private, deploy_key_public=public, deploy_key_at=_now())

    def remove_deploy_key(self, project: str) -> bool:
        had = self.git_access(project)["deploy_key"] is not None
        self._set_git(project, deploy_key=None, deploy_key_public=None, deploy_key_at=None)
        return had

    def set_git_token(self, project: str, token: str, user: str | None = None) -> None:
        validation.git_token(token)
        if user is not None:
            validation.git_user(user)
        self._set_git(project, token=token, token_user=user, token_at=_now())

    def remove_git_token(self, project: str) -> bool:
        had = self.git_access(project)["token"] is not None
        self._set_git(project, token=None, token_user=None, token_at=None)
        return had

    def pin_host_keys(self, project: str, lines: list[str]) -> list[dict[str, str]]:
        """Pin the keys of hosts that have no pin yet (first use); a host pinned already
        keeps its pin, whatever a line says. Returns what was pinned."""
        entries = [validation.host_key(line, "host_keys") for line in lines]
        pinned = []
        with self.transaction() as conn:
            project_id = self._id("project", validation.name(project, "project"))
            known = {row[0] for row in conn.execute("SELECT host FROM git_host_key WHERE project_id = ?",
                                                    (project_id,))}
            new_hosts = {host for host, _type, _key in entries} - known
            for host, key_type, key in entries:
                if host in new_hosts and conn.execute(
                        "INSERT OR IGNORE INTO git_host_key (project_id, host, type, key, pinned_at) "
                        "VALUES (?, ?, ?, ?, ?)", (project_id, host, key_type, key, _now())).rowcount:
                    pinned.append({"host": host, "type": key_type, "fingerprint": git_access.fingerprint(key)})
        return pinned

    def forget_host_keys(self, project: str, host: str) -> int:
        """Drop a host's pins (its key really changed): the next deploy pins it again."""
        host = validation.known_host(host, "host")
        with self.transaction() as conn:
            project_id = self._id("project", validation.name(project, "project"))
            return conn.execute("DELETE FROM git_host_key WHERE project_id = ? AND host = ?",
                                (project_id, host)).rowcount
