"""The web app's users: passwords hashed with scrypt (werkzeug's), the failed logins that
slow the next try down, the sessions, and the secret that signs session cookies.

Failed logins are counted here, not in a web worker's memory, so every gunicorn worker (and
a restart) sees them. Past a number of failures in :data:`FAILURE_WINDOW` seconds, each next
try must wait twice as long as the one before, up to :data:`MAX_WAIT` seconds; the number
is small for one user from one address (:data:`FREE_TRIES`), larger for one address trying
many users, larger still for one user from everywhere: someone guessing from elsewhere slows
the guesses down without locking the real user out.

Sessions live here too: the cookie only names one, so logging out, a new password or a
removed user ends it on every web worker at once.
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

FREE_TRIES = {"pair": 5, "addr": 20, "user": 50}  # failures before the waits start, by key
FAILURE_WINDOW = 15 * 60
MAX_WAIT = 300
SESSION_SEEN_EVERY = 60  # seconds between two writes of a session's last use
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
        """A new password; the user's sessions end."""
        digest = generate_password_hash(validation.password(password), method=HASH_METHOD)
        with self.transaction() as conn:
            self.get_user(name)
            # A second change within the same second must still end the sessions of the first.
            conn.execute("UPDATE user SET hash = ?, password_changed_at = ? WHERE name = ?", (digest, _now(), name))
            self.end_sessions(name)
        return self.get_user(name)

    def remove_user(self, name: str) -> dict[str, Any]:
        with self.transaction() as conn:
            user = self.get_user(name)
            conn.execute("DELETE FROM user WHERE name = ?", (name,))
            self.end_sessions(name)
        return user

    # -- logging in ----------------------------------------------------------------------

    def login(self, name: str, password: str, address: str) -> dict[str, Any]:
        """The user whose name and password these are; :class:`Throttled` while this try
        must wait, :class:`Unauthorized` (never saying which part was wrong) otherwise. The
        try is counted as a failure before the password is checked (in the same transaction
        as the check of the wait: tries in parallel cannot all slip through), and the count
        is cleared when the password is right."""
        user_key = str(name)[:64]
        keys = [f"pair:{user_key}|{address}", f"addr:{address}", f"user:{user_key}"]
        with self.transaction() as conn:
            wait = self.login_wait(keys)
            if wait:
                raise Throttled(wait)
            now = time.time()
            conn.execute("DELETE FROM login_failure WHERE at < ?", (now - FAILURE_WINDOW,))
            conn.executemany("INSERT INTO login_failure (key, at) VALUES (?, ?)", [(key, now) for key in keys])
        row = None
        if isinstance(name, str) and isinstance(password, str) and len(password) <= validation.PASSWORD_MAX_LENGTH:
            row = self._one("SELECT * FROM user WHERE name = ?", (name,))
        good = check_password_hash(row["hash"] if row else _DUMMY_HASH, password if isinstance(password, str) else "")
        if row is None or not good:
            raise Unauthorized("wrong user name or password", "check both and try again")
        with self.transaction() as conn:
            conn.executemany("DELETE FROM login_failure WHERE key = ?", [(keys[0],), (keys[2],)])
            conn.execute("UPDATE user SET last_login_at = ? WHERE id = ?", (_now(), row["id"]))
        return self.get_user(name)

    def login_wait(self, keys: list[str]) -> int:
        """Seconds before the next login may be tried for any of ``keys`` (0: now)."""
        now = time.time()
        wait = 0.0
        for key in keys:
            count, last = self.conn.execute(
                "SELECT count(*), max(at) FROM login_failure WHERE key = ? AND at >= ?",
                (key, now - FAILURE_WINDOW)).fetchone()
            free = FREE_TRIES[key.split(":", 1)[0]]
            if count >= free:
                wait = max(wait, last + min(2 ** (count - free + 1), MAX_WAIT) - now)
        return max(0, int(wait + 0.999))

    # -- sessions ----------------------------------------------------------------------------

    def open_session(self, name: str) -> str:
        """A new session of ``name``; returns its id (what the cookie carries)."""
        sid = secrets.token_urlsafe(32)
        now = time.time()
        with self.transaction() as conn:
            self.get_user(name)
            conn.execute("INSERT INTO web_session (id, user, created_at, seen_at) VALUES (?, ?, ?, ?)",
                         (sid, name, now, now))
        return sid

    def check_session(self, sid: Any, idle: float, max_age: float) -> str | None:
        """The user of session ``sid`` while it stands (used within ``idle`` seconds, opened
        less than ``max_age`` ago); None, and the session ended, otherwise."""
        if not isinstance(sid, str):
            return None
        row = self._one("SELECT * FROM web_session WHERE id = ?", (sid,))
        if row is None:
            return None
        now = time.time()
        if now - row["seen_at"] > idle or now - row["created_at"] > max_age:
            self.end_session(sid)
            return None
        if now - row["seen_at"] > SESSION_SEEN_EVERY:
            with self.transaction() as conn:
                conn.execute("UPDATE web_session SET seen_at = ? WHERE id = ?", (now, sid))
        return row["user"]

    def end_session(self, sid: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM web_session WHERE id = ?", (sid,))

    def end_sessions(self, name: str, keep: str | None = None) -> int:
        """End every session of ``name`` (but ``keep``); how many ended."""
        with self.transaction() as conn:
            return conn.execute("DELETE FROM web_session WHERE user = ? AND id IS NOT ?", (name, keep)).rowcount

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
