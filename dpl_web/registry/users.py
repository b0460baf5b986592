"""The web app's users: passwords hashed with scrypt (werkzeug's), the failed logins that
slow the next try down, and the secret that signs session cookies.

Failed logins are counted here, not in a web worker's memory, so every gunicorn worker (and
a restart) sees them: after :data:`FREE_TRIES` failures in :data:`FAILURE_WINDOW` seconds for
one user name or one address, each next try must wait twice as long as the one before, up to
:data:`MAX_WAIT` seconds.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from werkzeug.security import check_password_hash, generate_password_hash

from dpl_web.collection import validation
from dpl_web.errors import Conflict, NotFound, Throttled, Unauthorized
from dpl_web.registry.base import RegistryBase
from dpl_web.registry.records import _now

FREE_TRIES = 5
FAILURE_WINDOW = 15 * 60
MAX_WAIT = 300
HASH_METHOD = "scrypt"
# Checked against when the user does not exist, so a wrong name takes as long as a wrong
# password and the timing does not tell which names exist.
_DUMMY_HASH = generate_password_hash(secrets.token_urlsafe(16), method=HASH_METHOD)


def _user_dict(row: Any) -> dict[str, Any]:
    """A user's record: never the hash."""
    return {key: row[key] for key in ("name", "created_at", "password_changed_at", "last_login_at")}


class UsersTable(RegistryBase):
    """Users, failed logins and the session secret."""

    def add_user(self, name: str, password: str) -> dict[str, Any]:
        validation.name(name, "user")
        digest = generate_password_hash(validation.password(password), method=HASH_METHOD)
        with self.transaction() as conn:
            if self._one("SELECT 1 FROM user WHERE name = ?", (name,)):
                raise Conflict(f"user {name!r} already exists", "change their password instead, or choose another "
                                                                "name", "passwd")
            now = _now()
            conn.execute("INSERT INTO user (name, hash, created_at, password_changed_at) VALUES (?, ?, ?, ?)",
                         (name, digest, now, now))
        return self.get_user(name)

    def get_user(self, name: str) -> dict[str, Any]:
        row = self._one("SELECT * FROM user WHERE name = ?", (validation.name(name, "user"),))
        if row is None:
            raise NotFound("user", name)
        return _user_dict(row)

    def list_users(self) -> list[dict[str, Any]]:
        return [_user_dict(row) for row in self.conn.execute("SELECT * FROM user ORDER BY name")]

    def set_password(self, name: str, password: str) -> dict[str, Any]:
        """A new password; the sessions opened with the old one end (they carry its time)."""
        digest = generate_password_hash(validation.password(password), method=HASH_METHOD)
        with self.transaction() as conn:
            self.get_user(name)
            # A second change within the same second must still end the sessions of the first.
            changed = _now() + "." + secrets.token_hex(4)
            conn.execute("UPDATE user SET hash = ?, password_changed_at = ? WHERE name = ?", (digest, changed, name))
        return self.get_user(name)

    def remove_user(self, name: str) -> dict[str, Any]:
        with self.transaction() as conn:
            user = self.get_user(name)
            conn.execute("DELETE FROM user WHERE name = ?", (name,))
        return user

    # -- logging in ----------------------------------------------------------------------

    def login(self, name: str, password: str, address: str) -> dict[str, Any]:
        """The user whose name and password these are; :class:`Throttled` while the user or
        the address must wait, :class:`Unauthorized` (never saying which part was wrong)
        otherwise. A failure is counted; a success clears the user's and address's count."""
        keys = [f"user:{str(name)[:64]}", f"addr:{address}"]
        wait = self.login_wait(keys)
        if wait:
            raise Throttled(wait)
        row = None
        if isinstance(name, str) and isinstance(password, str) and len(password) <= validation.PASSWORD_MAX_LENGTH:
            row = self._one("SELECT * FROM user WHERE name = ?", (name,))
        good = check_password_hash(row["hash"] if row else _DUMMY_HASH, password if isinstance(password, str) else "")
        with self.transaction() as conn:
            if row is None or not good:
                now = time.time()
                conn.execute("DELETE FROM login_failure WHERE at < ?", (now - FAILURE_WINDOW,))
                conn.executemany("INSERT INTO login_failure (key, at) VALUES (?, ?)", [(key, now) for key in keys])
            else:
                conn.executemany("DELETE FROM login_failure WHERE key = ?", [(key,) for key in keys])
                conn.execute("UPDATE user SET last_login_at = ? WHERE id = ?", (_now(), row["id"]))
        if row is None or not good:
            raise Unauthorized("wrong user name or password", "check both and try again")
        return self.get_user(name)

    def login_wait(self, keys: list[str]) -> int:
        """Seconds before the next login may be tried for any of ``keys`` (0: now)."""
        now = time.time()
        wait = 0.0
        for key in keys:
            count, last = self.conn.execute(
                "SELECT count(*), max(at) FROM login_failure WHERE key = ? AND at >= ?",
                (key, now - FAILURE_WINDOW)).fetchone()
            if count >= FREE_TRIES:
                wait = max(wait, last + min(2 ** (count - FREE_TRIES + 1), MAX_WAIT) - now)
        return max(0, int(wait + 0.999))

    def session_valid(self, name: str, password_changed_at: str) -> bool:
        """Whether a session opened by ``name`` with the password of ``password_changed_at``
        still stands (the user exists and has not changed their password since)."""
        row = self._one("SELECT password_changed_at FROM user WHERE name = ?", (name,))
        return row is not None and row["password_changed_at"] == password_changed_at

    # -- the session secret ----------------------------------------------------------------

    def session_secret(self) -> str:
        """The key that signs session cookies: made once, the same for every web worker."""
        row = self._one("SELECT value FROM meta WHERE key = 'session_secret'")
        if row is None:
            with self.transaction() as conn:
                conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('session_secret', ?)",
                             (secrets.token_hex(32),))
            row = self._one("SELECT value FROM meta WHERE key = 'session_secret'")
        return row["value"]
