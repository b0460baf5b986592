"""Push webhooks from GitHub, Gitea/Forgejo and GitLab: who sent a call, whether it is
genuine, and what it says (which branch was pushed).

A forge signs a delivery with the app's webhook secret: GitHub and Gitea/Forgejo send an
HMAC-SHA256 of the raw body (``X-Hub-Signature-256: sha256=<hex>``, ``X-Gitea-Signature:
<hex>``, Forgejo also ``X-Forgejo-Signature``), GitLab sends the secret itself
(``X-Gitlab-Token``). Every comparison is constant-time. The service that acts on a push
is :func:`dpl_web.services.receive_push`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dpl_web.errors import BadRequest, Unauthorized

MAX_BODY = 5 * 1024 * 1024  # bytes: GitHub caps payloads at 25 MB, a push of many commits is far less


@dataclass(frozen=True)
class Delivery:
    forge: str  # github, gitea, gitlab
    event: str  # push, ping, ... (the forge's own word)
    delivery: str  # the forge's id of the delivery ("" when it sends none)
    payload: dict[str, Any]

    @property
    def is_push(self) -> bool:
        return self.event in ("push", "Push Hook")

    @property
    def branch(self) -> str | None:
        """The branch pushed (None for a tag or anything else)."""
        ref = self.payload.get("ref")
        return ref[len("refs/heads/"):] if isinstance(ref, str) and ref.startswith("refs/heads/") else None

    @property
    def default_branch(self) -> str | None:
        repository = self.payload.get("repository") or self.payload.get("project") or {}
        value = repository.get("default_branch") if isinstance(repository, Mapping) else None
        return value if isinstance(value, str) else None

    @property
    def commit(self) -> str | None:
        value = self.payload.get("after") or self.payload.get("checkout_sha")
        return value if isinstance(value, str) else None


def _header(headers: Mapping[str, str], name: str) -> str:
    return headers.get(name) or ""


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def verify(headers: Mapping[str, str], body: bytes, secret: str) -> Delivery:
    """The delivery, if genuine: signed (or tokened) with ``secret``. Unauthorized otherwise,
    without saying what was wrong beyond which header was expected."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    github = _header(headers, "X-Hub-Signature-256")
    gitea = _header(headers, "X-Gitea-Signature") or _header(headers, "X-Forgejo-Signature")
    gitlab = _header(headers, "X-Gitlab-Token")
    if github:
        forge, good = "github", _same(github, f"sha256={digest}")
        event, delivery = _header(headers, "X-GitHub-Event"), _header(headers, "X-GitHub-Delivery")
    elif gitea:
        forge, good = "gitea", _same(gitea, digest)
        event = _header(headers, "X-Gitea-Event") or _header(headers, "X-Forgejo-Event")
        delivery = _header(headers, "X-Gitea-Delivery") or _header(headers, "X-Forgejo-Delivery")
    elif gitlab:
        forge, good = "gitlab", _same(gitlab, secret)
        event = _header(headers, "X-Gitlab-Event")
        delivery = _header(headers, "X-Gitlab-Event-UUID") or _header(headers, "Idempotency-Key")
    else:
        raise Unauthorized("the call is not signed", "configure the webhook with the app's secret: GitHub and "
                                                     "Gitea/Forgejo sign with it, GitLab sends it as its token")
    if not good:
        raise Unauthorized(f"the {forge} signature does not match the app's webhook secret",
                           "paste the app's current webhook secret into the forge (it changes when rotated)")
    try:
        payload = json.loads(body) if body else {}
    except ValueError:
        raise BadRequest("the body is not JSON", "set the webhook's content type to application/json") from None
    if not isinstance(payload, dict):
        raise BadRequest("the body is not a JSON object")
    return Delivery(forge, event, delivery, payload)
