"""DPL's errors: one root (:class:`DplError`) and one class per kind of failure.

Each kind carries what every client needs to report it, in one table (:data:`KINDS`):

=============  ====  ====  ==============================================================
code           exit  HTTP  when
=============  ====  ====  ==============================================================
failure        1     500   anything else (a file could not be read, LXD unreachable, ...)
registry       3     503   the registry is missing, corrupt, newer than DPL, or locked
invalid        4     422   a value was refused by the validation layer; nothing changed
not_found      5     404   the host, container, project, app or job named does not exist
conflict       6     409   it exists already, a port, domain or address is taken, it still
                           has children, or the job is in a state that forbids the change
job_failed     7     500   a job ran and failed; its record says why
bad_request    2     400   the request is malformed (not JSON, not an object)
unauthorized   8     401   no token, or one unknown, expired or revoked
forbidden      9     403   a read-only token asked for a change
throttled      10    429   too many failed logins: wait the seconds it says
=============  ====  ====  ==============================================================

Messages say what happened; ``hint`` says what to do, naming no client (no command line,
no URL); ``remedy``, when there is one, names the fix for machines (``cascade``, ``edit``,
``list:host``, ...), which the CLI turns into its own advice. :func:`describe` gives the
JSON shape the CLI prints and the API will answer.
"""

from __future__ import annotations

from typing import Any

from dpl_web.collection import validation

DplError = validation.DplError
ValidationError = validation.ValidationError

__all__ = ["DplError", "ValidationError", "BadRequest", "RegistryUnusable", "NotFound", "Conflict", "JobFailed",
           "Unauthorized", "Forbidden", "Throttled", "KINDS", "describe"]


class RegistryUnusable(DplError):
    """The registry file cannot be opened, created, migrated or written."""

    code = "registry"
    exit_code = 3
    http_status = 503


class NotFound(DplError, LookupError):
    """A host, container, project, app, job or variable the caller named does not exist."""

    code = "not_found"
    exit_code = 5
    http_status = 404

    def __init__(self, kind: str, name: str, hint: str | None = None, remedy: str | None = None):
        self.kind = kind
        self.name = name
        super().__init__(f"{kind} {name!r} does not exist",
                         hint if hint is not None else f"list the {kind}s to see which exist",
                         remedy if remedy is not None else f"list:{kind}")


class Conflict(DplError):
    """The change clashes with what is recorded: a name, port, domain or address is taken,
    the object still has children, or a job is in a state that forbids the change."""

    code = "conflict"
    exit_code = 6
    http_status = 409
    hint = "nothing was changed"


class BadRequest(DplError):
    """The request itself is malformed (not JSON, not an object): nothing in it was read."""

    code = "bad_request"
    exit_code = 2
    http_status = 400


class Unauthorized(DplError):
    """No credentials, or credentials that are unknown, expired or revoked."""

    code = "unauthorized"
    exit_code = 8
    http_status = 401
    hint = "send a valid token: Authorization: Bearer <token>"


class Forbidden(DplError):
    """The credentials are good but do not allow this (a read-only token asking for a change)."""

    code = "forbidden"
    exit_code = 9
    http_status = 403
    hint = "use a token with the write scope"


class Throttled(DplError):
    """Too many failed logins for this user or address: the next try must wait ``wait`` s."""

    code = "throttled"
    exit_code = 10
    http_status = 429

    def __init__(self, wait: int):
        self.wait = wait
        super().__init__(f"too many failed logins: wait {wait} s before the next try",
                         "check the user name and password; the wait grows with each failure")


class JobFailed(DplError):
    """A job ran and did not succeed: ``job`` is its record (a dict, as the registry gives it)."""

    code = "job_failed"
    exit_code = 7
    http_status = 500

    def __init__(self, message: str, job: dict[str, Any]):
        self.job = job
        super().__init__(message, "the job's record holds its log and the step that failed")


KINDS: tuple[type[DplError], ...] = (DplError, BadRequest, RegistryUnusable, ValidationError, NotFound, Conflict,
                                     JobFailed, Unauthorized, Forbidden, Throttled)


def describe(exc: DplError) -> dict[str, Any]:
    """The error as JSON: ``{"type", "code", "message", "hint", ...}`` plus the field, value
    and rule of a refused value (a value that is not plain JSON is shown as its repr), the
    kind and name of what was not found, the id of a failed job."""
    body: dict[str, Any] = {"type": exc.code, "code": exc.code, "message": str(exc), "hint": exc.hint}
    if exc.remedy:
        body["remedy"] = exc.remedy
    if isinstance(exc, ValidationError):
        value = exc.value if isinstance(exc.value, str | int | float | bool | type(None)) else repr(exc.value)
        body.update(field=exc.field, value=value, rule=exc.rule)
    elif isinstance(exc, NotFound):
        body.update(kind=exc.kind, name=exc.name)
    elif isinstance(exc, JobFailed):
        body.update(job=exc.job["id"])
    elif isinstance(exc, Throttled):
        body.update(wait=exc.wait)
    return body
