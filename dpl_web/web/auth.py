"""Logging in and out, the session, and the gate in front of every page.

The session is Flask's signed cookie (HttpOnly, SameSite=Lax, Secure over TLS) holding the
user's name, when their password was last changed (a new password ends older sessions) and
when they were last seen (idle for longer than ``SESSION_IDLE_SECONDS`` ends it).
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for

from dpl_web import services
from dpl_web.errors import DplError, Throttled, Unauthorized
from dpl_web.registry import Registry

bp = Blueprint("auth", __name__)

IDLE_SECONDS = 2 * 3600  # the default; the setting is SESSION_IDLE_SECONDS
SEEN_EVERY = 60  # seconds between two rewrites of the cookie's "last seen"
# What anyone may reach: the login page, the health check and the app's own files. The JSON
# API and the webhooks authenticate each request themselves (a token, a signature).
PUBLIC_ENDPOINTS = {"auth.login", "health.page", "health.api", "static"}
SELF_AUTHENTICATED = {"api", "hooks"}


def _registry() -> Registry:
    return Registry.open(current_app.config["REGISTRY"], create=False)


def _end(reason: str | None = None):
    session.clear()
    if reason:
        flash(reason, "warning")
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?") if request.method == "GET" else None))


def gate():
    """Let a request through to a page only with a session that still stands."""
    if request.endpoint in PUBLIC_ENDPOINTS or request.blueprint in SELF_AUTHENTICATED or request.endpoint is None:
        return None
    name, changed, seen = session.get("user"), session.get("password_changed_at"), session.get("seen", 0)
    if not name:
        return _end()
    now = time.time()
    if now - seen > current_app.config.get("SESSION_IDLE_SECONDS", IDLE_SECONDS):
        return _end("your session ended after a while without use: log in again")
    with _registry() as reg:
        if not reg.session_valid(name, changed):
            return _end("your session ended (the password changed, or the user was removed): log in again")
    if now - seen > SEEN_EVERY:
        session["seen"] = int(now)
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
        except Throttled as exc:
            error, status = str(exc), exc.http_status
        except Unauthorized as exc:
            error, status = f"{exc}: {exc.hint}", exc.http_status
        else:
            session.clear()  # a fresh session: nothing carried over from before the login
            session.update(user=user["name"], password_changed_at=user["password_changed_at"], seen=int(time.time()))
            session.permanent = False
            return redirect(_safe_next(request.args.get("next")))
    return render_template("login.html", error=error, user=request.form.get("user", "")), status


@bp.post("/logout")
def logout():
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
                user = services.set_password(context, g.user["name"], new).record
                session["password_changed_at"] = user["password_changed_at"]
                flash("password changed; your other sessions have ended", "info")
                return redirect(url_for("auth.account"))
        except (Unauthorized, Throttled) as exc:
            errors["password"] = str(exc)
        except DplError as exc:
            errors["new_password"] = getattr(exc, "rule", str(exc))
    return render_template("account.html", errors=errors), 422 if errors else 200
