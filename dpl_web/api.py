"""The JSON API, /api/v1: the services (dpl_web.services) over HTTP, for scripts and the web.

Every route is declared once in :data:`ROUTES` (method, path, scope, summary, what it takes
and answers); the blueprint's rules and the OpenAPI 3.1 document (``/api/v1/openapi.json``)
are both made from it, and the schemas in it come from the one definition of each record
(registry.fields, registry.records).

- Auth: ``Authorization: Bearer <token>`` (``dpl token add``), on every route. A read token
  may only look (GET); a change needs a write token (403 otherwise); a missing, unknown,
  expired or revoked token is 401.
- Errors are JSON: ``{"error": {"code", "message", "hint", "field", "value", "rule", ...}}``
  with the HTTP status of dpl_web.errors' table (a secret value is never echoed).
- Operations that run a job answer ``202 Accepted`` with the job and its URL; the job's
  events come from ``GET /api/v1/jobs/<id>?after=SEQ`` (a cursor) or as server-sent events
  from ``/api/v1/jobs/<id>/stream`` (resuming at ``Last-Event-ID``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request, stream_with_context
from werkzeug.exceptions import HTTPException

from dpl_web import repo_access, services
from dpl_web.errors import BadRequest, DplError, Forbidden, Unauthorized, describe
from dpl_web.jobs import follow
from dpl_web.registry import JOB_FINISHED, JOB_STATUSES, Registry, fields
from dpl_web.registry.git_access import GIT_ACCESS_SCHEMA
from dpl_web.registry.records import AUDIT_SCHEMA, EVENT_SCHEMA, JOB_SCHEMA, record_schema

PREFIX = "/api/v1"

bp = Blueprint("api", __name__, url_prefix=PREFIX)


# -- the routes, declared once ---------------------------------------------------------------


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties)}


def many(name: str) -> dict[str, Any]:
    return {"type": "array", "items": ref(name)}


REMOVED = {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}}


def queued_with(**more: Any) -> dict[str, Any]:
    """The answer of a route that queued a job: the job, its URL, the jobs it replaced,
    notes; and ``more``."""
    return obj(job=ref("job"), url={"type": "string"}, replaced={"type": "array", "items": {"type": "integer"}},
               notes={"type": "array", "items": {"type": "string"}}, **more)


QUEUED = queued_with()


@dataclass
class Route:
    method: str
    path: str  # OpenAPI form: /apps/{project}/{app}
    scope: str  # read or write
    summary: str
    view: Callable[..., Any]
    status: int = 200
    body: dict[str, Any] | None = None  # the request's JSON Schema
    answer: dict[str, Any] = field(default_factory=dict)  # the answer's JSON Schema
    query: tuple[str, ...] = ()
    more: dict[int, dict[str, Any]] = field(default_factory=dict)  # other answers: status -> schema

    @property
    def rule(self) -> str:
        return self.path.replace("{", "<").replace("}", ">")


ROUTES: list[Route] = []


def route(method: str, path: str, summary: str, status: int = 200, body: dict | None = None,
          answer: dict | None = None, query: tuple[str, ...] = (), more: dict[int, dict] | None = None) -> Callable:
    def register(view: Callable) -> Callable:
        scope = "read" if method == "GET" else "write"
        ROUTES.append(Route(method, path, scope, summary, view, status, body, answer or {}, query, more or {}))
        bp.add_url_rule(path.replace("{", "<").replace("}", ">"), f"{view.__name__}", view, methods=[method])
        return view
    return register


# -- request plumbing ----------------------------------------------------------------------


def ctx() -> services.Context:
    return services.Context(Path(current_app.config["REGISTRY"]), f"token:{g.token['name']}",
                            start_worker=current_app.config.get("START_WORKER", True))


def body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadRequest("the request's body must be a JSON object", "send Content-Type: application/json and an "
                                                                     "object such as {\"name\": ...}")
    return data


def flag(name: str) -> bool:
    return request.args.get(name, "").lower() in ("1", "true", "yes")


def queued(outcome: services.Outcome, **more: Any) -> tuple[Response, int]:
    job = outcome.job
    return jsonify(job=job, url=f"{PREFIX}/jobs/{job['id']}", replaced=outcome.replaced, notes=outcome.notes,
                   **more), 202


@bp.before_request
def authenticate() -> None:
    header = request.headers.get("Authorization", "")
    scheme, _sep, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("this API needs a token")
    with Registry.open(current_app.config["REGISTRY"], create=False) as reg:
        g.token = reg.check_token(token.strip())
    if request.method not in ("GET", "HEAD", "OPTIONS") and g.token["scope"] != "write":
        raise Forbidden(f"token {g.token['name']} may only read")


@bp.errorhandler(DplError)
def dpl_error(exc: DplError) -> tuple[Response, int]:
    return jsonify(error=describe(exc)), exc.http_status


def http_error(exc: HTTPException) -> Response | HTTPException:
    """404 and 405 under /api/ as JSON, like every other error of the API."""
    if not request.path.startswith("/api/"):
        return exc
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.code or 500, "http_error")
    return jsonify(error={"type": code, "code": code, "message": exc.description, "hint": "see /api/v1/openapi.json"}
                   ), exc.code or 500


# -- hosts -----------------------------------------------------------------------------------


@route("GET", "/hosts", "list the LXD hosts", answer=obj(hosts=many("host")))
def hosts_list():
    return jsonify(hosts=services.list_hosts(ctx()))


@route("GET", "/hosts/{name}", "show a host", answer=obj(host=ref("host")))
def hosts_show(name: str):
    return jsonify(host=services.get_host(ctx(), name))


# -- containers ------------------------------------------------------------------------------


@route("GET", "/containers", "list the containers", answer=obj(containers=many("container")), query=("host",))
def containers_list():
    return jsonify(containers=services.list_containers(ctx(), host=request.args.get("host")))


@route("GET", "/containers/{name}", "show a container", answer=obj(container=ref("container")))
def containers_show(name: str):
    return jsonify(container=services.get_container(ctx(), name))


@route("POST", "/containers", "record a container and create it in LXD (a job)", 202,
       body={**fields.json_schema("container"), "properties": {
           "name": {"type": "string"}, "host": {"type": "string"}, **fields.json_schema("container")["properties"]},
           "required": ["name"]},
       answer=queued_with(container=ref("container")))
def containers_create():
    data = body()
    name, host = data.pop("name", None), data.pop("host", "local")
    outcome = services.create_container(ctx(), name, host, **data)
    return queued(outcome, container=outcome.record)


IMPORTABLE = {"type": "object", "properties": {
    "name": {"type": "string"}, "host": {"type": "string"}, "status": {"type": "string"},
    **{key: fields.json_schema("container")["properties"][key]
       for key in ("ipv4", "profiles", "cpu", "memory", "disk", "notes")},
    # The /root/apps folders found in it, offered as apps (not recorded).
    "apps": {"type": "array", "items": {"type": "object", "properties": {
        "port": {"type": ["integer", "null"]},
        **{key: {"type": ["string", "null"]} for key in ("project", "name", "path", "package_name", "start",
                                                         "start_script", "repo", "why", "add")}}}}}}


@route("GET", "/containers/importable/{name}", "what importing a container made outside DPL would record "
                                               "(nothing is changed)",
       answer=obj(container=IMPORTABLE), query=("host",))
def containers_importable(name: str):
    return jsonify(container=services.container_in_lxd(ctx(), name, request.args.get("host", "local")))


@route("POST", "/containers/import", "record a container made outside DPL as LXD has it, then reconfigure it "
                                     "(a job, when it runs: its address pinned, its directories laid out); "
                                     "one recorded already: 200, nothing done", 202,
       body={"type": "object", "properties": {"name": {"type": "string"}, "host": {"type": "string"}},
             "required": ["name"]},
       answer=queued_with(container=ref("container")),
       more={201: obj(container=ref("container"), notes={"type": "array", "items": {"type": "string"}}),
             200: obj(container=ref("container"), notes={"type": "array", "items": {"type": "string"}})})
def containers_import():
    data = body()
    outcome = services.import_container(ctx(), data.get("name"), data.get("host", "local"))
    if outcome.job is None:  # 200: recorded already, nothing done; 201: recorded (it does not run)
        return jsonify(container=outcome.record, notes=outcome.notes), 201 if outcome.changed else 200
    return queued(outcome, container=outcome.record)


@route("PATCH", "/containers/{name}", "change a container's record (a reconfigure applies it)",
       body=fields.json_schema("container", for_change=True),
       answer=obj(changed={"type": "boolean"}, container=ref("container")))
def containers_edit(name: str):
    outcome = services.edit_container(ctx(), name, **body())
    return jsonify(changed=outcome.changed, container=outcome.record)


@route("POST", "/containers/{name}/{action}", "start, stop, restart or reconfigure a container (a job)", 202,
       answer=QUEUED)
def containers_action(name: str, action: str):
    if action == "delete":
        raise BadRequest("delete a container with DELETE /containers/{name}")
    return queued(services.container_action(ctx(), name, action))


@route("DELETE", "/containers/{name}", "delete a container in LXD, then its record (a job; ?force=1 with its apps)",
       202, answer=QUEUED, query=("force",))
def containers_delete(name: str):
    return queued(services.container_action(ctx(), name, "delete", force=flag("force")))


# -- projects --------------------------------------------------------------------------------


@route("GET", "/projects", "list the projects", answer=obj(projects=many("project")), query=("container",))
def projects_list():
    return jsonify(projects=services.list_projects(ctx(), container=request.args.get("container")))


@route("GET", "/projects/{name}", "show a project", answer=obj(project=ref("project")))
def projects_show(name: str):
    return jsonify(project=services.get_project(ctx(), name))


@route("POST", "/projects", "record a project in a container", 201,
       body={"type": "object", "required": ["name", "container"], "additionalProperties": False,
             "properties": {"name": {"type": "string"}, "container": {"type": "string"},
                            **fields.json_schema("project")["properties"]}},
       answer=obj(project=ref("project")))
def projects_add():
    data = body()
    name, container = data.pop("name", None), data.pop("container", None)
    return jsonify(project=services.add_project(ctx(), name, container, **data).record), 201


@route("DELETE", "/projects/{name}", "remove a project (?cascade=1: its apps too, taken out of service by a job; "
       "?record_only=1: only the records)", 200, answer=obj(changed={"type": "boolean"}, removed=REMOVED),
       query=("cascade", "record_only"), more={202: queued_with(removed=REMOVED)})
def projects_remove(name: str):
    outcome = services.remove_project(ctx(), name, cascade=flag("cascade"), record_only=flag("record_only"))
    if outcome.job is not None:
        return queued(outcome, removed=outcome.record)
    return jsonify(changed=True, removed=outcome.record)


# -- private repositories --------------------------------------------------------------------

ACCESS = obj(changed={"type": "boolean"}, access=ref("git_access"))


@route("GET", "/projects/{name}/git", "how the project reaches its private repositories: the deploy key's public "
       "half, whether a token is set, the pinned host keys (never a secret)", answer=obj(access=ref("git_access")))
def git_access_show(name: str):
    return jsonify(access=repo_access.access(ctx(), name))


@route("POST", "/projects/{name}/git/key", "the project's deploy key, made when it has none "
       "(?rotate=1: a new one)", answer=ACCESS, query=("rotate",))
def git_key_make(name: str):
    outcome = repo_access.deploy_key(ctx(), name, rotate=flag("rotate"))
    return jsonify(changed=outcome.changed, access=outcome.record)


@route("DELETE", "/projects/{name}/git/key", "forget the deploy key (the next deploy deletes its copy)",
       answer=ACCESS)
def git_key_remove(name: str):
    outcome = repo_access.remove_deploy_key(ctx(), name)
    return jsonify(changed=outcome.changed, access=outcome.record)


@route("PUT", "/projects/{name}/git/token", "set the token for https repositories (never shown back)",
       body={"type": "object", "required": ["token"], "additionalProperties": False,
             "properties": {"token": {"type": "string"}, "user": {"type": "string"}}}, answer=ACCESS)
def git_token_set(name: str):
    data = body()
    outcome = repo_access.set_token(ctx(), name, data.get("token"), user=data.get("user"))
    return jsonify(changed=outcome.changed, access=outcome.record)


@route("DELETE", "/projects/{name}/git/token", "forget the token", answer=ACCESS)
def git_token_remove(name: str):
    outcome = repo_access.remove_token(ctx(), name)
    return jsonify(changed=outcome.changed, access=outcome.record)


@route("DELETE", "/projects/{name}/git/host-keys/{host}", "forget a git host's pinned key after it really changed "
       "(the next deploy pins the new one)", answer=ACCESS)
def git_host_key_forget(name: str, host: str):
    outcome = repo_access.forget_host_key(ctx(), name, host)
    return jsonify(changed=outcome.changed, access=outcome.record)


# -- apps ------------------------------------------------------------------------------------

APP_REQUEST = {"type": "object", "required": ["name", "project", "repo"], "properties": {
    "name": {"type": "string"}, "project": {"type": "string"}, "container": {"type": "string"},
    "domain": {"type": "string"}, "start": {"type": "string"},
    "env": {"type": "object", "description": "NAME: value, or NAME: {\"value\": ..., \"secret\": true}"},
    **fields.json_schema("app")["properties"]}}


@route("GET", "/apps", "list the apps", answer=obj(apps=many("app")), query=("project", "container"))
def apps_list():
    return jsonify(apps=services.list_apps(ctx(), project=request.args.get("project"),
                                           container=request.args.get("container")))


@route("GET", "/apps/{project}/{app}", "show an app (secret variables by name only)", answer=obj(app=ref("app")))
def apps_show(project: str, app: str):
    return jsonify(app=services.get_app(ctx(), f"{project}/{app}"))


@route("POST", "/apps", "record an app (the seed's request shape)", 201, body=APP_REQUEST,
       answer=obj(app=ref("app")))
def apps_add():
    return jsonify(app=services.add_app_request(ctx(), body()).record), 201


@route("PATCH", "/apps/{project}/{app}", "change an app (a change of domains runs a job for the vhosts)", 200,
       body={"type": "object", "properties": {
           **fields.json_schema("app", for_change=True)["properties"],
           "env": {"type": "object"}, "secret_env": {"type": "object"},
           "unset_env": {"type": "array", "items": {"type": "string"}},
           "add_domains": {"type": "array", "items": {"type": "string"}},
           "remove_domains": {"type": "array", "items": {"type": "string"}}, "record_only": {"type": "boolean"}}},
       answer=obj(changed={"type": "boolean"}, app=ref("app")),
       more={202: queued_with(changed={"type": "boolean"}, app=ref("app"))})
def apps_edit(project: str, app: str):
    data = body()
    outcome = services.edit_app(ctx(), f"{project}/{app}", **data)
    if outcome.job is not None:
        return queued(outcome, changed=outcome.changed, app=outcome.record)
    return jsonify(changed=outcome.changed, app=outcome.record)


@route("DELETE", "/apps/{project}/{app}", "take an app out of service and remove it (a job; ?record_only=1: "
       "only the record)", 202, answer=queued_with(removed=REMOVED),
       query=("record_only",), more={200: obj(changed={"type": "boolean"}, removed=REMOVED)})
def apps_remove(project: str, app: str):
    outcome = services.remove_app(ctx(), f"{project}/{app}", record_only=flag("record_only"))
    if outcome.job is None:
        return jsonify(changed=True, removed=outcome.record)
    return queued(outcome, removed=outcome.record)


@route("POST", "/apps/{project}/{app}/deploy", "deploy an app (a job; a deploy still queued is replaced)", 202,
       body={"type": "object", "properties": {"ref": {"type": "string"}}}, answer=QUEUED)
def apps_deploy(project: str, app: str):
    data = request.get_json(silent=True) or {}
    if not isinstance(data, dict):
        raise BadRequest("the request's body must be a JSON object")
    return queued(services.deploy(ctx(), f"{project}/{app}", data.get("ref")))


@route("POST", "/apps/{project}/{app}/rollback", "switch an app back to its previous release (a job)", 202,
       answer=QUEUED)
def apps_rollback(project: str, app: str):
    return queued(services.rollback(ctx(), f"{project}/{app}"))


@route("POST", "/apps/{project}/{app}/restore", "rebuild an app from one of its backups (a job)", 202,
       body={"type": "object", "required": ["backup"], "properties": {"backup": {"type": "string"}}}, answer=QUEUED)
def apps_restore(project: str, app: str):
    return queued(services.restore(ctx(), f"{project}/{app}", body().get("backup")))


@route("POST", "/deploy", "the simple deploy request: record or update the app (creating its container when the "
       "project has none), then deploy it", 202, body=APP_REQUEST, answer=QUEUED)
def deploy_request():
    return queued(services.deploy_request(ctx(), body()))


# -- jobs ------------------------------------------------------------------------------------


@route("GET", "/jobs", "list jobs, newest first", answer=obj(jobs=many("job")),
       query=("app", "project", "container", "status", "kind", "target", "limit"))
def jobs_list():
    filters: dict[str, Any] = {key: request.args[key] for key in ("app", "project", "container", "kind", "target")
                               if key in request.args}
    if "status" in request.args:
        filters["status"] = request.args.getlist("status")
    if "limit" in request.args:
        filters["limit"] = request.args["limit"]
    return jsonify(jobs=services.list_jobs(ctx(), **filters))


@route("GET", "/jobs/{job_id}", "a job, with its events after ?after=SEQ (a cursor: pass back `next`)",
       answer=obj(job=ref("job"), events=many("event"), next={"type": "integer"}, done={"type": "boolean"}),
       query=("after",))
def jobs_show(job_id: str):
    after = request.args.get("after", "0")
    job = services.get_job(ctx(), job_id)
    events = services.job_events(ctx(), job_id, after=after)
    return jsonify(job=job, events=events, next=events[-1]["seq"] if events else int(after),
                   done=job["status"] in JOB_FINISHED)


@route("POST", "/jobs/{job_id}/cancel", "cancel a queued job, or stop a running one", answer=obj(job=ref("job")))
def jobs_cancel(job_id: str):
    return jsonify(job=services.cancel_job(ctx(), job_id).record)


@route("GET", "/jobs/{job_id}/stream", "a job's events as server-sent events (id = sequence number; reconnect "
       "with Last-Event-ID), until it ends", answer={})
def jobs_stream(job_id: str):
    context = ctx()
    services.get_job(context, job_id)  # 404 before the stream starts
    after = request.headers.get("Last-Event-ID") or request.args.get("after") or "0"
    try:
        after = int(after)
    except ValueError:
        raise BadRequest("Last-Event-ID must be a sequence number") from None
    stream = stream_with_context(follow.server_sent_events(context.registry_path, int(job_id), after))
    return Response(stream, mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# -- the audit trail ---------------------------------------------------------------------------


@route("GET", "/audit", "who did what, newest first", answer=obj(audit=many("audit")),
       query=("who", "target", "limit"))
def audit_list():
    filters: dict[str, Any] = {key: request.args[key] for key in ("who", "target", "limit") if key in request.args}
    return jsonify(audit=services.list_audit(ctx(), **filters))


# -- the document ----------------------------------------------------------------------------


@route("GET", "/openapi.json", "this document", answer={"type": "object"})
def openapi():
    return jsonify(openapi_document())


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1, made from ROUTES and the records' schemas."""
    paths: dict[str, dict[str, Any]] = {}
    for item in ROUTES:
        operation: dict[str, Any] = {
            "operationId": item.view.__name__, "summary": item.summary,
            "security": [{"bearer": [item.scope]}],
            "responses": {
                **{str(status): {"description": "accepted: a job was queued" if status == 202 else "done",
                                 "content": {"application/json": {"schema": schema}}}
                   for status, schema in {item.status: item.answer, **item.more}.items()},
                "default": {"description": "an error", "content": {"application/json": {"schema": ref("error")}}},
            },
        }
        parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                      for name in _path_names(item.path)]
        parameters += [{"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
                       for name in item.query]
        if parameters:
            operation["parameters"] = parameters
        if item.body is not None:
            operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": item.body}}}
        paths.setdefault(PREFIX + item.path, {})[item.method.lower()] = operation
    schemas = {kind: record_schema(kind) for kind in ("host", "container", "project", "app")}
    schemas.update(job=JOB_SCHEMA, event=EVENT_SCHEMA, audit=AUDIT_SCHEMA, git_access=GIT_ACCESS_SCHEMA, error={
        "type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "type": {"type": "string"}, "message": {"type": "string"},
                           "hint": {"type": "string"}, "remedy": {"type": "string"}, "field": {"type": "string"},
                           "value": {}, "rule": {"type": "string"}}}}})
    return {
        "openapi": "3.1.0",
        "info": {"title": "DPL", "version": "1", "description": "DPL's registry, deploys and jobs. Errors: "
                 "400 bad request, 401 no valid token, 403 read-only token, 404 not found, 409 conflict, "
                 "422 a value refused (field, value, rule). Job statuses: " + ", ".join(JOB_STATUSES) + "."},
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "a token of `dpl token add`"}}},
    }


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def register(app: Flask) -> None:
    app.register_blueprint(bp)
    app.register_error_handler(HTTPException, http_error)
