"""Forms made from the records' one definition (registry.fields): each field's input, label,
help and bounds come from its :class:`~dpl_web.registry.fields.Field`, and what a form sends
is turned back into the values the services take. The services' validation refuses a bad
value; :func:`field_errors` puts its rule next to the field it names.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Flask, render_template, request
from werkzeug.datastructures import MultiDict

from dpl_web.errors import DplError, ValidationError
from dpl_web.registry import FIELDS


@dataclass
class Input:
    """One input of a form: what the template needs to draw it."""

    name: str
    kind: str  # string, integer, boolean, array
    help: str
    required: bool
    value: Any
    bounds: dict[str, Any]

    @property
    def label(self) -> str:
        return self.name.replace("_", " ")

    @property
    def text(self) -> str:
        """The value as the input shows it."""
        if self.value is None:
            return ""
        if self.kind == "array" and not isinstance(self.value, str):  # a record's list, not what was sent
            return "\n".join(self.value)
        return str(self.value)


def inputs(kind: str, record: dict[str, Any] | None = None, only: tuple[str, ...] | None = None,
           sent: MultiDict | None = None) -> list[Input]:
    """The inputs of a ``kind`` record's form, filled from ``record`` (an edit) or from what
    the user ``sent`` (shown again after a refusal, so nothing typed is lost)."""
    made = []
    for name, spec in FIELDS[kind].items():
        if only is not None and name not in only:
            continue
        if sent is not None:
            value = (name in sent) if spec.kind == "boolean" else sent.get(name, "")
        elif record is not None:
            value = _record_value(record, name)
        else:
            value = None if spec.required or spec.default is None else spec.default
        help_text = spec.doc + (f" (default: {spec.default_doc})" if spec.default_doc else "")
        made.append(Input(name, spec.kind, help_text, spec.required, value, dict(spec.bounds)))
    return made


def _record_value(record: dict[str, Any], name: str) -> Any:
    if name in record:
        return record[name]
    return record.get("limits", {}).get(name)  # a container's cpu, memory, disk


_LIST_SEPARATORS = re.compile(r"[\s,]+")
_WHOLE_NUMBER = re.compile(r"[0-9]{1,18}")  # ASCII digits only: "²".isdigit() is true


def read(kind: str, form: MultiDict, only: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The values a ``kind`` form sent, as the services take them: empty is None where the
    field may be empty (a limit removed) and left out where it may not (its default, or no
    change); a list is split on commas, spaces or lines; a checkbox is a boolean. Nothing is
    checked here: the services' validation does it."""
    values: dict[str, Any] = {}
    for name, spec in FIELDS[kind].items():
        if only is not None and name not in only:
            continue
        if spec.kind == "boolean":
            values[name] = name in form
            continue
        if name not in form:
            continue
        raw = form.get(name, "")
        if spec.kind == "array":
            values[name] = [item for item in _LIST_SEPARATORS.split(raw) if item]
        elif raw.strip() == "" and spec.nullable:
            values[name] = None  # a limit removed, a setting cleared
        elif raw.strip() == "" and not spec.required:
            continue  # left empty: its default on a new record, unchanged on an edit
        elif spec.kind == "integer" and _WHOLE_NUMBER.fullmatch(raw.strip()):
            values[name] = int(raw.strip())
        else:
            values[name] = raw
    return values


def field_errors(exc: DplError, names: list[str]) -> dict[str, str]:
    """A refusal as ``{field: message}``: under its field when the form has it, under ``""``
    (shown above the form) otherwise."""
    if isinstance(exc, ValidationError):
        field = str(exc.field).split(" ", maxsplit=1)[0].split("[", maxsplit=1)[0]
        if field in names:
            return {field: f"{exc.rule} (nothing was saved)"}
    return {"": f"{exc} ({exc.hint})" if exc.hint else str(exc)}


def record_form(kind: str, template: str, save: Callable[[dict[str, Any]], Any], record: dict | None = None,
                names: tuple[str, ...] = (), **context: Any) -> Any:
    """A page with a ``kind`` record's form: on GET the form (filled from ``record`` for an
    edit); on POST, ``save(values)`` (its answer is the page's, usually a redirect) or, when a
    value is refused, the form again with what was typed and the rule under its field (422).
    ``names``: the form's inputs besides the record's fields (a name, a parent)."""
    errors: dict[str, str] = {}
    sent = None
    if request.method == "POST":
        sent = request.form
        values = read(kind, request.form)
        try:
            return save(values)
        except DplError as exc:
            errors = field_errors(exc, [*names, *values])
    return render_template(template, errors=errors, sent=sent, inputs=inputs(kind, record=record, sent=sent),
                           **context), 422 if errors else 200


# -- template filters ------------------------------------------------------------------------


def size(value: Any) -> str:
    """Bytes for people: 1.5 MB."""
    if not isinstance(value, int | float):
        return "-"
    for unit in ("B", "kB", "MB", "GB"):
        if abs(value) < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return str(value)


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def duration(start: str | None, end: str | None = None) -> str:
    """How long from ``start`` to ``end`` (or to now): 2 min 5 s."""
    first = _time(start)
    if first is None:
        return "-"
    last = _time(end) or datetime.now(UTC)
    seconds = max(0, int((last - first).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def ago(value: str | None) -> str:
    return "-" if _time(value) is None else duration(value) + " ago"


def register_filters(app: Flask) -> None:
    app.add_template_filter(size)
    app.add_template_filter(duration)
    app.add_template_filter(ago)
