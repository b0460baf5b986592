"""``POST /hooks/<project>/<app>``: push webhooks from GitHub, Gitea/Forgejo and GitLab.

No login and no token: the call proves itself with the app's webhook secret
(dpl_web.webhooks). The answer comes at once; the deploy is a queued job.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, current_app, jsonify, request

from dpl_web import services
from dpl_web.errors import BadRequest, DplError, describe
from dpl_web.webhooks import MAX_BODY

bp = Blueprint("hooks", __name__, url_prefix="/hooks")


@bp.errorhandler(DplError)
def dpl_error(exc: DplError) -> tuple[Response, int]:
    return jsonify(error=describe(exc)), exc.http_status


@bp.post("/<project>/<app>")
def push(project: str, app: str) -> tuple[Response, int]:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise BadRequest(f"the body is over {MAX_BODY} bytes")
    body = request.get_data(cache=False)
    if len(body) > MAX_BODY:
        raise BadRequest(f"the body is over {MAX_BODY} bytes")
    context = services.Context(Path(current_app.config["REGISTRY"]), "webhook",
                               start_worker=current_app.config.get("START_WORKER", True))
    outcome = services.receive_push(context, project, app, request.headers, body)
    return jsonify(outcome), 202 if outcome["status"] == "queued" else 200
