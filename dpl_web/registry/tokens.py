"""The JSON API's bearer tokens: made here (the token is shown once), stored as a SHA-256
hash, read-only or read-write, with an optional expiry; revoked, never deleted (the audit
of what a token did keeps its name)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from dpl_web.collection import validation
from dpl_web.errors import Conflict, NotFound, Unauthorized
from dpl_web.registry.base import RegistryBase
from dpl_web.registry.records import _now, _token_dict

TOKEN_SCOPES = ("read", "write")
TOKEN_PREFIX = "dpl_"  # says what a token is when it turns up in a file or a log
MAX_TOKEN_DAYS = 3650


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokensTable(RegistryBase):
    """The JSON API's bearer tokens."""

    def add_token(self, name: str, scope: str = "read", expires_days: int | None = None) -> tuple[dict[str, Any], str]:
        """Make a token; returns its record and the token itself, which is not kept."""
        validation.name(name, "token")
        validation.choice(scope, "scope", TOKEN_SCOPES)
        expires_at = None
        if expires_days is not None:
            days = validation.count(expires_days, "expires", minimum=1, maximum=MAX_TOKEN_DAYS)
            expires_at = (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.transaction() as conn:
            if self._one("SELECT 1 FROM api_token WHERE name = ?", (name,)):
                raise Conflict(f"token {name!r} already exists", "revoke it, or choose another name")
            conn.execute("INSERT INTO api_token (name, hash, scope, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                         (name, token_hash(token), scope, _now(), expires_at))
        return self.get_token(name), token

    def get_token(self, name: str) -> dict[str, Any]:
        row = self._one("SELECT * FROM api_token WHERE name = ?", (validation.name(name, "token"),))
        if row is None:
            raise NotFound("token", name)
        return _token_dict(row)

    def list_tokens(self) -> list[dict[str, Any]]:
        return [_token_dict(row) for row in self.conn.execute("SELECT * FROM api_token ORDER BY name")]

    def revoke_token(self, name: str) -> dict[str, Any]:
        with self.transaction() as conn:
            token = self.get_token(name)
            if token["revoked_at"] is None:
                conn.execute("UPDATE api_token SET revoked_at = ? WHERE name = ?", (_now(), name))
        return self.get_token(name)

    def check_token(self, token: str) -> dict[str, Any]:
        """The record of a valid token (and note its use); Unauthorized otherwise, without
        saying which of unknown, expired or revoked (the caller learns nothing from it)."""
        if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            raise Unauthorized("the token is not valid")
        row = self._one("SELECT * FROM api_token WHERE hash = ?", (token_hash(token),))
        now = _now()
        if row is None or row["revoked_at"] is not None or (row["expires_at"] is not None and row["expires_at"] <= now):
            raise Unauthorized("the token is not valid: unknown, expired or revoked")
        if row["last_used_at"] is None or row["last_used_at"][:16] != now[:16]:
            # At most a write a minute per token: reads must not queue behind writers.
            with self.transaction() as conn:
                conn.execute("UPDATE api_token SET last_used_at = ? WHERE id = ?", (now, row["id"]))
        return _token_dict(row)
