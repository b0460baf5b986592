"""What each record holds: its fields, their checks (the one validation layer) and defaults,
and the request shapes that become them (the seed's JSON request)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from dpl_web.collection import releases, validation
from dpl_web.errors import ValidationError

SECRET_MASK = "********"


def layout(project: str, app: str) -> dict[str, str]:
    """Where an app's files live inside its container (the seed's layout), as the deploy
    pipeline's one definition of an app's paths (module_utils/releases.AppPaths) has them."""
    app_paths = releases.AppPaths(project, app)
    return {"app_dir": app_paths.live, "deploy_dir": app_paths.checkout, "backup_dir": app_paths.backups}


def split_app(value: str, field: str = "app") -> tuple[str, str]:
    """``"project/app"`` -> ``("project", "app")``, both validated names."""
    if not isinstance(value, str) or value.count("/") != 1:
        raise ValidationError(field, value, "name an app as PROJECT/APP, for example shop/web")
    project, app = value.split("/")
    return validation.name(project, f"{field} (project)"), validation.app_name(app, field)


_REQUIRED = object()


@dataclass(frozen=True)
class Field:
    """One field of a record, defined once: the registry checks values with ``check`` (the
    one validation layer) and fills in ``default``; the CLI makes its option and help from
    it (:func:`dpl_web.cli`), the inventory its keys, :func:`json_schema` the API's schema;
    a test holds the modules' argument specs to it (modules must stay standalone)."""

    check: Callable[[Any, str], Any]
    doc: str
    default: Any = _REQUIRED
    # None is a value: a limit removed, a setting cleared (an empty CLI value gives it).
    nullable: bool = False
    # Its JSON type: string, integer, boolean or array (of strings).
    kind: str = "string"
    # JSON Schema keywords beyond the type (bounds), taken from validation's constants.
    bounds: Mapping[str, Any] = dataclass_field(default_factory=dict)
    # The CLI's option when it is not --<name with dashes>, and its placeholder.
    option: str | None = None
    metavar: str | None = None
    # What the default means, where its value alone does not say it.
    default_doc: str | None = None
    # Part of the inventory's variables of the record (notes are for people only).
    inventory: bool = True

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED


_PORT_BOUNDS = {"minimum": 1, "maximum": 65536 - validation.APP_PORT_COUNT}
_KEEP_BOUNDS = {"minimum": 1, "maximum": validation.KEEP_MAX}
_NOTES = Field(validation.text, "free text for people (not used by DPL)", "", inventory=False)

HOST_FIELDS: dict[str, Field] = {
    "endpoint": Field(validation.lxd_endpoint, "LXD API: unix:, unix:/path/to/socket or https://host:8443", "unix:"),
    "client_cert": Field(validation.absolute_path, "client certificate for an https endpoint", None, True,
                         metavar="PATH"),
    "client_key": Field(validation.absolute_path, "key of the client certificate", None, True, metavar="PATH"),
    "server_cert": Field(validation.absolute_path, "the remote LXD's certificate, pinned", None, True,
                         metavar="PATH"),
    "public_ipv4": Field(validation.ipv4, "public address, for DNS records", None, True, metavar="ADDRESS"),
    "nginx_sites_dir": Field(validation.absolute_path, "nginx's sites-available directory",
                             "/etc/nginx/sites-available", metavar="DIR"),
    "bridge": Field(validation.interface_name, "the containers' bridge", "dplbr0", metavar="NAME"),
    "bridge_ipv4": Field(validation.ipv4_interface, "the host's address on the bridge", "10.210.0.1/24",
                         metavar="CIDR"),
    "notes": _NOTES,
}

CONTAINER_FIELDS: dict[str, Field] = {
    "image": Field(validation.image, "LXD image alias", "dpl-base"),
    "profiles": Field(validation.names, "LXD profile, repeatable", ["default"], kind="array", option="--profile",
                      metavar="PROFILE"),
    "cpu": Field(validation.cpu_limit, "CPU limit: a number of CPUs or a set such as 0-1", None, True,
                 default_doc="no limit"),
    "memory": Field(validation.size, "memory limit such as 1GiB", None, True, default_doc="no limit"),
    "disk": Field(validation.size, "root disk size such as 10GiB", None, True, default_doc="no limit"),
    # None on add: the lowest free address from .10 up in the host's bridge network.
    "ipv4": Field(validation.ipv4, "fixed address on the host's bridge", None, metavar="ADDRESS",
                  default_doc="the next free one"),
    # Talks to the host only, not to the other containers (docs/containers.md).
    "isolated": Field(validation.flag, "talk to the host only, not to the other containers (applied by a "
                                       "reconfigure)", False, kind="boolean"),
    "notes": _NOTES,
}

PROJECT_FIELDS: dict[str, Field] = {
    "notes": _NOTES,
}

APP_FIELDS: dict[str, Field] = {
    "repo": Field(validation.repo_url, "git repository: https://, ssh://, git://, file:// or user@host:path",
                  metavar="URL"),
    # None: the repository's default branch (its HEAD), asked at each deploy.
    "ref": Field(validation.git_ref, "branch, tag or commit to deploy", None, True,
                 default_doc="the repository's default branch, asked at each deploy"),
    "deploy_script": Field(validation.command, "path in the repository or command run before the switch", None,
                           True, metavar="SCRIPT", default_doc="none"),
    "start_command": Field(validation.command, "command that starts the app", "npm start", option="--start",
                           metavar="COMMAND"),
    "port": Field(validation.app_port, "port the app listens on, unique in its container (it uses the next one "
                                       "too, for deploys without downtime)", 3000, kind="integer",
                  bounds=_PORT_BOUNDS),
    "domains": Field(validation.domains, "domain served by the app, repeatable", [], kind="array",
                     option="--domain", metavar="DOMAIN", default_doc="none"),
    "health_path": Field(validation.url_path, "URL path of the health check", "/", metavar="PATH"),
    "keep_releases": Field(validation.keep_count, "releases kept for rollback", 5, kind="integer",
                           bounds=_KEEP_BOUNDS, metavar="N"),
    "keep_backups": Field(validation.keep_count, "backups kept", 5, kind="integer", bounds=_KEEP_BOUNDS,
                          metavar="N"),
    "notes": _NOTES,
}

FIELDS: dict[str, dict[str, Field]] = {"host": HOST_FIELDS, "container": CONTAINER_FIELDS,
                                       "project": PROJECT_FIELDS, "app": APP_FIELDS}


def json_schema(kind: str, for_change: bool = False) -> dict[str, Any]:
    """The JSON Schema (2020-12, as OpenAPI 3.1 uses it) of a record's fields: what a request
    may send. ``for_change``: every field optional (an edit)."""
    properties = {}
    for name, spec in FIELDS[kind].items():
        schema: dict[str, Any] = {"type": [spec.kind, "null"] if spec.nullable else spec.kind,
                                  "description": spec.doc, **spec.bounds}
        if spec.kind == "array":
            schema["items"] = {"type": "string"}
        if not spec.required:
            schema["default"] = spec.default
        properties[name] = schema
    required = [] if for_change else [name for name, spec in FIELDS[kind].items() if spec.required]
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


# How the ref column (NOT NULL since v2) stores "no ref: follow the default branch".
DEFAULT_BRANCH_REF = ""


def _ref_column(values: dict[str, Any]) -> dict[str, Any]:
    if "ref" in values and values["ref"] is None:
        values["ref"] = DEFAULT_BRANCH_REF
    return values


# Keys of the seed's request shape (and the CLI's --from-json) that differ from APP_FIELDS.
_REQUEST_ALIASES = {"start": "start_command"}


def check_fields(kind: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Validate some fields of a ``kind`` (host, container, project, app) without storing them."""
    return _check(kind, values, FIELDS[kind], defaults=False)


def _check(kind: str, values: Mapping[str, Any], spec: Mapping[str, Field],
           defaults: bool) -> dict[str, Any]:
    """Validate ``values`` against ``spec``; with ``defaults``, fill in what is missing."""
    checked: dict[str, Any] = {}
    for key, value in values.items():
        if key not in spec:
            raise ValidationError(key, value, f"is not a field of a {kind}; use one of {', '.join(spec)}")
        field = spec[key]
        if value is None:
            if not field.nullable:
                raise ValidationError(key, value, "must be given")
            checked[key] = None
        else:
            checked[key] = field.check(value, key)
    if defaults:
        for key, field in spec.items():
            if key in checked:
                continue
            if field.required:
                raise ValidationError(key, None, "must be given")
            checked[key] = list(field.default) if isinstance(field.default, list) else field.default
    return checked


def _secret_env(values: Any, field: str = "secret_env") -> dict[str, str]:
    """Validate secret variables without ever putting a secret value into an error message."""
    if not isinstance(values, Mapping):
        raise ValidationError(field, SECRET_MASK, "must be a mapping of NAME to value")
    checked = {}
    for key, value in values.items():
        validation.env_name(key, f"{field} name")
        checked[key] = validation.secret_value(value, f"{field}[{key}]")
    return checked


def _env_changes(env: Any, secret_env: Any, unset: Any) -> tuple[dict, dict, list]:
    """Validate the three ways an app's environment changes; a name may appear once."""
    plain = validation.env(env, "env") if env is not None else {}
    secret = _secret_env(secret_env) if secret_env is not None else {}
    if unset is None:
        unset = []
    if isinstance(unset, str) or not isinstance(unset, list | tuple):
        raise ValidationError("unset_env", unset, "must be a list of variable names")
    removed = [validation.env_name(name, "unset_env") for name in unset]
    for name in plain:
        if name in secret:
            raise ValidationError("env", name, "is given both as a plain and as a secret variable")
    for name in removed:
        if name in plain or name in secret:
            raise ValidationError("unset_env", name, "is also being set in the same change")
    return plain, secret, removed


def app_request(data: Any) -> dict[str, Any]:
    """Turn the seed's request shape into :meth:`Registry.add_app` keyword arguments.

    ``{"name": "web", "project": "shop", "repo": "https://..."}`` plus optional ``ref``,
    ``port``, ``domain`` (one) or ``domains`` (a list), ``start`` or ``start_command``,
    ``deploy_script``, ``health_path``, ``keep_releases``, ``keep_backups``, ``notes`` and
    ``env``: a mapping of NAME to a value, or to ``{"value": ..., "secret": true}`` for a
    secret; and ``container``, to create the project there when it does not exist yet.
    Shared by the CLI (``dpl app add --from-json``) and the JSON API.
    """
    if not isinstance(data, Mapping):
        raise ValidationError("request", data, 'must be a JSON object such as {"name": ..., '
                                               '"project": ..., "repo": ...}')
    request = dict(data)
    result: dict[str, Any] = {}
    for key in ("project", "name", "repo"):
        if key not in request:
            raise ValidationError(key, None, "must be given")
    result["project"] = validation.name(request.pop("project"), "project")
    result["name"] = validation.app_name(request.pop("name"), "name")
    if request.get("container") is not None:
        result["container"] = validation.container_name(request.pop("container"), "container")
    request.pop("container", None)
    if "domain" in request and "domains" in request:
        raise ValidationError("domain", request["domain"], "give either domain or domains, not both")
    if "domain" in request:
        request["domains"] = [request.pop("domain")]
    for alias, key in _REQUEST_ALIASES.items():
        if alias in request:
            if key in request:
                raise ValidationError(alias, request[alias], f"give either {alias} or {key}, not both")
            request[key] = request.pop(alias)
    env = request.pop("env", None)
    if env is not None:
        if not isinstance(env, Mapping):
            raise ValidationError("env", env, "must be a mapping of NAME to value")
        plain, secret = {}, {}
        for key, value in env.items():
            if isinstance(value, Mapping):
                unknown = set(value) - {"value", "secret"}
                if unknown or "value" not in value or not isinstance(value.get("secret", False), bool):
                    raise ValidationError(f"env[{key}]", SECRET_MASK if value.get("secret") else value,
                                          'use a value or {"value": ..., "secret": true}')
                (secret if value.get("secret") else plain)[key] = value["value"]
            else:
                plain[key] = value
        result["env"], result["secret_env"] = plain, secret
    if "secret_env" in request:
        result.setdefault("secret_env", {}).update(_secret_env(request.pop("secret_env")))
    for key, value in request.items():
        if key not in APP_FIELDS:
            raise ValidationError(key, value, "is not a field of an app request; use name, project, repo, "
                                              "container, ref, port, domain or domains, start, deploy_script, "
                                              "env, health_path, keep_releases, keep_backups, notes")
        result[key] = value
    return result
