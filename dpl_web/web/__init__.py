"""The web app: server-rendered pages over dpl_web.services (the CLI's and the API's
services), one blueprint per concern.

- :mod:`.auth`: login, logout, the session (signed cookie, idle expiry) and the gate that
  keeps every page but login and the health check behind it.
- :mod:`.forms`: forms made from the records' one definition (registry.fields), and the
  refused value shown next to its field.
- :mod:`.dashboard`, :mod:`.containers`, :mod:`.projects`, :mod:`.apps`, :mod:`.jobs`,
  :mod:`.admin` (tokens, users, the audit trail): the pages.

Every form carries a CSRF token (Flask-WTF's CSRFProtect); the JSON API (bearer tokens) and
the webhooks (signed bodies) are exempt, as they take no cookie. Pages load no script or
style but the app's own (the Content-Security-Policy says so): the host may have no internet.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from flask import Flask, Response, current_app, g, render_template, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from dpl_web import services
from dpl_web.errors import DplError, RegistryUnusable, describe
from dpl_web.registry import Registry

csrf = CSRFProtect()

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, marked Secure whenever the request came over TLS (behind
    the host's nginx, which says so in X-Forwarded-Proto), so one setting fits both ways in."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure or super().get_cookie_secure(app)


class LoopbackProxyFix:
    """Believe X-Forwarded-For/-Proto/-Host only from a proxy on this machine (the host's
    nginx): a client elsewhere could otherwise pick its own address and dodge the login
    throttle."""

    def __init__(self, wsgi_app):
        self.plain = wsgi_app
        self.proxied = ProxyFix(wsgi_app, x_for=1, x_proto=1, x_host=1)

    def __call__(self, environ, start_response):
        app = self.proxied if environ.get("REMOTE_ADDR") in ("127.0.0.1", "::1") else self.plain
        return app(environ, start_response)


def ctx() -> services.Context:
    """The services' context of this request: the registry, and the logged-in user."""
    return services.Context(Path(current_app.config["REGISTRY"]), f"user:{g.user['name']}",
                            start_worker=current_app.config.get("START_WORKER", True))


def _secret_key(app: Flask) -> str:
    try:
        with Registry.open(app.config["REGISTRY"], create=False) as reg:
            return reg.session_secret()
    except RegistryUnusable:
        # No registry yet (the health page says so): sessions will not outlive this process.
        return secrets.token_hex(32)


def page_error(exc: DplError) -> tuple[str, int]:
    """A refused request on a page: its own page, with the message and what to do (the API
    and the webhooks answer JSON through their blueprints' own handlers)."""
    return render_template("error.html", error=describe(exc), status=exc.http_status), exc.http_status


def csrf_error(exc: CSRFError) -> tuple[str, int]:
    return render_template("error.html", status=400, error={
        "message": f"the form was refused: {exc.description}",
        "hint": "the page was open too long, or came from another site: reload it and try again"}), 400


def security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.blueprint not in ("api", "hooks", "static") and request.endpoint != "static":
        response.headers.setdefault("Cache-Control", "no-store")  # pages hold the registry's state
    return response


def register(app: Flask) -> None:
    from dpl_web import api, hooks
    from dpl_web.web import admin, apps, auth, containers, dashboard, forms, jobs, monitoring, projects, vhosts

    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _secret_key(app)
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # the session's idle expiry bounds it
    app.session_interface = SessionInterface()
    app.wsgi_app = LoopbackProxyFix(app.wsgi_app)  # type: ignore[method-assign]
    csrf.init_app(app)
    csrf.exempt(api.bp)  # bearer tokens, never a cookie: nothing for another site to ride on
    csrf.exempt(hooks.bp)  # a signed body proves each call
    app.before_request(auth.gate)
    app.after_request(security_headers)
    app.register_error_handler(DplError, page_error)
    app.register_error_handler(CSRFError, csrf_error)
    for blueprint in (auth.bp, dashboard.bp, containers.bp, projects.bp, apps.bp, jobs.bp, admin.bp, monitoring.bp,
                      vhosts.bp):
        app.register_blueprint(blueprint)
    forms.register_filters(app)
