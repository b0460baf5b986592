"""Logging in and out, the session, and the gate in front of every page.

The session lives in the registry (registry.users): Flask's signed cookie (HttpOnly,
SameSite=Lax, Secure over TLS) only carries its id. It ends when it has been idle for
``SESSION_IDLE_SECONDS``, is older than ``SESSION_MAX_SECONDS``, at logout, when the user's
password changes and when the user is removed, on every web worker at once.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for

from dpl_web import services
from dpl_web.errors import DplError, Throttled, Unauthorized
from dpl_web.registry import Registry

bp = Blueprint("auth", __name__)

IDLE_SECONDS = 2 * 3600  # the default; the setting is SESSION_IDLE_SECONDS
MAX_SECONDS = 12 * 3600  # a session's whole life, however busy (SESSION_MAX_SECONDS)
# What anyone may reach: the login page, the health check and the app's own files. The JSON
# API and the webhooks authenticate each request themselves (a token, a signature).
PUBLIC_ENDPOINTS = {"auth.login", "health.page", "health.api", "static"}
SELF_AUTHENTICATED = {"api", "hooks", "metrics"}


def _registry() -> Registry:
    return Registry.open(current_app.config["REGISTRY"], create=False)


def _end(reason: str | None = None):
    session.clear()
    if reason:
        flash(reason, "warning")
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?") if request.method == "GET" else None))


def session_user(reg: Registry) -> str | None:
    """The user of this request's session, while it stands."""
    return reg.check_session(session.get("sid"), current_app.config.get("SESSION_IDLE_SECONDS", IDLE_SECONDS),
                             current_app.config.get("SESSION_MAX_SECONDS", MAX_SECONDS))


def gate():
    """Let a request through to a page only with a session that still stands."""
    if request.endpoint in PUBLIC_ENDPOINTS or request.blueprint in SELF_AUTHENTICATED or request.endpoint is None:
        return None
    if not session.get("sid"):
        return _end()
    with _registry() as reg:
        name = session_user(reg)
    if name is None:
        return _end("your session has ended (unused for a while, logged out, or the password changed): log in "
                    "again")
    g.user = {"name": name}
    return None


def _safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this site only (never another site)."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("dashboard.index")


@bp.route("/login", methods=["GET", "POST"])
def login():
    error, status = None, 200
    if request.method == "POST":
        name = request.form.get("user", "")
        try:
            with _registry() as reg:
                user = reg.login(name, request.form.get("password", ""), request.remote_addr or "-")
                sid = reg.open_session(user["name"])
                reg.add_audit(f"user:{user['name']}", "user.login", f"user/{user['name']}",
                              {"address": request.remote_addr or "-"})
        except Throttled as exc:
            error, status = str(exc), exc.http_status
        except Unauthorized as exc:
            error, status = f"{exc}: {exc.hint}", exc.http_status
        else:
            session.clear()  # a fresh session: nothing carried over from before the login
            session["sid"] = sid
            return redirect(_safe_next(request.args.get("next")))
    return render_template("login.html", error=error, user=request.form.get("user", "")), status


@bp.post("/logout")
def logout():
    with _registry() as reg:
        reg.end_session(session.get("sid"))
        reg.add_audit(f"user:{g.user['name']}", "user.logout", f"user/{g.user['name']}")
    session.clear()
    flash("logged out", "info")
    return redirect(url_for("auth.login"))


@bp.route("/account", methods=["GET", "POST"])
def account():
    """Change one's own password (the current one proves it is them)."""
    errors: dict[str, str] = {}
    if request.method == "POST":
        context = services.Context(Path(current_app.config["REGISTRY"]), f"user:{g.user['name']}")
        new = request.form.get("new_password", "")
        try:
            with _registry() as reg:
                reg.login(g.user["name"], request.form.get("password", ""), request.remote_addr or "-")
            if new != request.form.get("repeat", ""):
                errors["repeat"] = "the two new passwords differ"
            else:
                services.set_password(context, g.user["name"], new)  # ends every session of the user
                with _registry() as reg:
                    session["sid"] = reg.open_session(g.user["name"])  # but this one goes on
                flash("password changed; your other sessions have ended", "info")
                return redirect(url_for("auth.account"))
        except (Unauthorized, Throttled) as exc:
            errors["password"] = str(exc)
        except DplError as exc:
            errors["new_password"] = getattr(exc, "rule", str(exc))
    return render_template("account.html", errors=errors), 422 if errors else 200
