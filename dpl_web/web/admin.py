"""Administration: the API's tokens, the web app's users and the audit trail."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for

from dpl_web import services
from dpl_web.errors import DplError
from dpl_web.registry import TOKEN_SCOPES, Registry
from dpl_web.web import ctx

bp = Blueprint("admin", __name__)

AUDIT_PAGE = 100


def confirm_password() -> None:
    """What makes lasting access (a token, a user) asks for the password again: a session
    left open, or taken, is not enough."""
    with Registry.open(current_app.config["REGISTRY"], create=False) as reg:
        reg.login(g.user["name"], request.form.get("password", ""), request.remote_addr or "-")


@bp.route("/tokens", methods=["GET", "POST"])
def tokens():
    """List the tokens; make one (shown on this answer only)."""
    made, error, status = None, None, 200
    if request.method == "POST":
        expires = request.form.get("expires", "").strip() or None
        try:
            confirm_password()
            made = services.add_token(ctx(), request.form.get("name", ""), request.form.get("scope", "read"),
                                      expires).record
        except DplError as exc:
            error, status = str(exc), exc.http_status
    return render_template("tokens.html", tokens=services.list_tokens(ctx()), scopes=TOKEN_SCOPES, made=made,
                           error=error), status


@bp.post("/tokens/<name>/revoke")
def revoke_token(name: str):
    outcome = services.revoke_token(ctx(), name)
    flash(f"token {name}: {'revoked' if outcome.changed else 'already revoked'}", "info")
    return redirect(url_for("admin.tokens"))


@bp.route("/users", methods=["GET", "POST"])
def users():
    """List the users; add one with a made password (shown on this answer only)."""
    made, error, status = None, None, 200
    if request.method == "POST":
        password = services.new_password()
        try:
            confirm_password()
            user = services.add_user(ctx(), request.form.get("name", ""), password).record
            made = {"name": user["name"], "password": password}
        except DplError as exc:
            error, status = str(exc), exc.http_status
    return render_template("users.html", users=services.list_users(ctx()), made=made, error=error), status


@bp.post("/users/<name>/remove")
def remove_user(name: str):
    if name == g.user["name"]:
        flash("you cannot remove yourself: log in as another user first", "warning")
        return redirect(url_for("admin.users"))
    services.remove_user(ctx(), name)
    flash(f"user {name}: removed", "info")
    return redirect(url_for("admin.users"))


@bp.get("/audit")
def audit():
    filters = {key: request.args[key] for key in ("who", "target") if request.args.get(key)}
    return render_template("audit.html", entries=services.list_audit(ctx(), **filters, limit=AUDIT_PAGE),
                           filters=filters, session_user=session.get("user"))
