"""One definition of each record's fields (registry.fields): the registry's checks, the
CLI's options, the inventory's keys and the API's schema come from it, and the modules
that must stay standalone are held to it here."""

from __future__ import annotations

import jsonschema
import pytest

from dpl_web import cli, registry
from dpl_web.collection import validation
from dpl_web.registry import fields
from dpl_web.registry.fields import FIELDS

# The module's argument spec types, as the fields' kinds say them.
MODULE_TYPES = {"string": "str", "integer": "int", "boolean": "bool", "array": "list"}


def test_the_deploy_modules_options_agree_with_the_apps_fields():
    from ansible_collections.dpl.platform.plugins.module_utils.app_pipeline import app_argument_spec

    spec = app_argument_spec()
    shared = [name for name in registry.APP_FIELDS if name in spec]
    assert {"port", "start_command", "deploy_script", "health_path", "keep_releases", "keep_backups"} <= set(shared)
    for name in shared:
        field = registry.APP_FIELDS[name]
        assert spec[name]["type"] == MODULE_TYPES[field.kind], name
        assert spec[name].get("default") == field.default, name


@pytest.mark.parametrize(("kind", "name", "good", "bad"), [
    ("app", "port", [1, 3000, 65534], [0, 65535, 65536]),
    ("app", "keep_releases", [1, validation.KEEP_MAX], [0, validation.KEEP_MAX + 1]),
    ("app", "keep_backups", [1, validation.KEEP_MAX], [0, validation.KEEP_MAX + 1]),
])
def test_the_schemas_bounds_are_the_checks_bounds(kind, name, good, bad):
    schema = fields.json_schema(kind, for_change=True)
    field = FIELDS[kind][name]
    for value in good:
        field.check(value, name)
        jsonschema.validate({name: value}, schema)
    for value in bad:
        with pytest.raises(validation.ValidationError):
            field.check(value, name)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({name: value}, schema)


def test_the_schema_requires_what_the_registry_requires_and_nothing_more(reg):
    schema = fields.json_schema("app")
    assert schema["required"] == ["repo"] and schema["additionalProperties"] is False
    assert schema["properties"]["ref"]["type"] == ["string", "null"]
    assert schema["properties"]["keep_backups"]["default"] == 5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"repo": "https://x.example.com/a.git", "colour": "blue"}, schema)
    reg.add_container("web1")
    with pytest.raises(validation.ValidationError, match="is not a field of a app"):
        reg.add_app("shop", "web", "https://x.example.com/a.git", container="web1", colour="blue")


@pytest.mark.parametrize("kind", ["host", "container", "project", "app"])
def test_every_field_is_an_option_of_the_cli_with_its_doc_and_default(kind):
    parser = cli.build_parser()
    verb = {"host": ["host", "add", "x"], "container": ["container", "add", "x"],
            "project": ["project", "add", "x", "--container", "c"], "app": ["app", "add", "p/a"]}[kind]
    options = {action.dest: action for action in _subparser(parser, verb[:2])._actions}
    for name, spec in FIELDS[kind].items():
        assert name in options, f"{kind} field {name} has no option"
        assert options[name].help.startswith(spec.doc)
        if spec.default not in (None, "", False, fields._REQUIRED) and not spec.default_doc:
            shown = ", ".join(spec.default) if isinstance(spec.default, list) else spec.default
            assert f"(default: {shown})" in options[name].help


def _subparser(parser, words):
    for word in words:
        action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        parser = action.choices[word]
    return parser


def test_the_inventory_has_the_fields_that_concern_machines():
    assert "notes" not in registry.INVENTORY_KEYS["app"] and "notes" not in registry.INVENTORY_KEYS["container"]
    for name, spec in registry.APP_FIELDS.items():
        assert (name in registry.INVENTORY_KEYS["app"]) == spec.inventory
