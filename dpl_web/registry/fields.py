"""What each record holds: its fields, their checks (the one validation layer) and defaults,
and the request shapes that become them (the seed's JSON request)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

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


class _Field(NamedTuple):
    default: Any
    check: Callable[[Any, str], Any]
    nullable: bool = False


_REQUIRED = object()

HOST_FIELDS: dict[str, _Field] = {
    "endpoint": _Field("unix:", validation.lxd_endpoint),
    "client_cert": _Field(None, validation.absolute_path, True),
    "client_key": _Field(None, validation.absolute_path, True),
    "server_cert": _Field(None, validation.absolute_path, True),
    "public_ipv4": _Field(None, validation.ipv4, True),
    "nginx_sites_dir": _Field("/etc/nginx/sites-available", validation.absolute_path),
    "bridge": _Field("dplbr0", validation.interface_name),
    "bridge_ipv4": _Field("10.210.0.1/24", validation.ipv4_interface),
    "notes": _Field("", validation.text),
}

CONTAINER_FIELDS: dict[str, _Field] = {
    "image": _Field("dpl-base", validation.image),
    "profiles": _Field(["default"], validation.names),
    "cpu": _Field(None, validation.cpu_limit, True),
    "memory": _Field(None, validation.size, True),
    "disk": _Field(None, validation.size, True),
    # None on add: the lowest free address from .10 up in the host's bridge network.
    "ipv4": _Field(None, validation.ipv4, True),
    # Talks to the host only, not to the other containers (docs/containers.md).
    "isolated": _Field(False, validation.flag),
    "notes": _Field("", validation.text),
}

PROJECT_FIELDS: dict[str, _Field] = {
    "notes": _Field("", validation.text),
}

APP_FIELDS: dict[str, _Field] = {
    "repo": _Field(_REQUIRED, validation.repo_url),
    # None: the repository's default branch (its HEAD), asked at each deploy.
    "ref": _Field(None, validation.git_ref, True),
    "deploy_script": _Field(None, validation.command, True),
    "start_command": _Field("npm start", validation.command),
    "port": _Field(3000, validation.app_port),
    "domains": _Field([], validation.domains),
    "health_path": _Field("/", validation.url_path),
    "keep_releases": _Field(5, validation.keep_count),
    "keep_backups": _Field(5, validation.keep_count),
    "notes": _Field("", validation.text),
}

# How the ref column (NOT NULL since v2) stores "no ref: follow the default branch".
DEFAULT_BRANCH_REF = ""


def _ref_column(values: dict[str, Any]) -> dict[str, Any]:
    if "ref" in values and values["ref"] is None:
        values["ref"] = DEFAULT_BRANCH_REF
    return values


# Keys of the seed's request shape (and the CLI's --from-json) that differ from APP_FIELDS.
_REQUEST_ALIASES = {"start": "start_command"}


def _check(kind: str, values: Mapping[str, Any], spec: Mapping[str, _Field],
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
            if field.default is _REQUIRED:
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
