# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""DPL's one validation layer.

Every name, domain, git ref, URL, path, port and command that a user gives DPL passes
through a function here before it reaches a shell, a template, a path or the registry:
the CLI, the JSON API, the web forms, the inventory plugin and the modules all call these
same functions. Each returns the value in its canonical form or raises
:class:`ValidationError`, whose message names the field, the (quoted) value and the rule.

Standard library only: modules import this on the managed host.
"""

from __future__ import annotations

import ipaddress
import re

__all__ = [
    "ValidationError",
    "app_name", "name", "container_name", "domain", "domains", "repo_url", "git_ref", "port",
    "relative_path", "url_path", "env_name", "env_value", "command", "ipv4", "lxd_endpoint",
    "size", "cpu_limit", "count", "text",
]

_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_SIZE = re.compile(r"^[1-9][0-9]{0,12}(B|kB|MB|GB|TB|KiB|MiB|GiB|TiB)$")
_SCP_LIKE = re.compile(
    r"^(?:[A-Za-z0-9][A-Za-z0-9._-]*@)?(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*):(?P<path>[^\\]+)$")
_URL = re.compile(r"^(?P<scheme>https|ssh|git|file)://(?P<authority>[^/?#\s]*)(?P<path>/[^\s]*)?$")
_HOST = re.compile(
    r"^(?:[A-Za-z0-9][A-Za-z0-9._~-]*@)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*)(?::[0-9]{1,5})?$")


class ValidationError(ValueError):
    """A value was refused. ``field``, ``value`` and ``rule`` say which, what and why."""

    def __init__(self, field, value, rule):
        self.field = field
        self.value = value
        self.rule = rule
        super().__init__("%s: %s is not valid: %s" % (field, _show(value), rule))


def _show(value):
    """The value as it may be printed: quoted, control characters escaped, cut short."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _string(field, value, max_length=None):
    if not isinstance(value, str):
        raise ValidationError(field, value, "must be a string")
    if max_length is not None and len(value) > max_length:
        raise ValidationError(field, value, "must be at most %d characters" % max_length)
    return value


def name(value, field="name"):
    """A DPL object name: an RFC 1123 label.

    Lower-case letters, digits and '-', 1 to 63 characters, not starting or ending
    with '-'. Used for projects, apps and hosts; safe as a path component, a systemd
    unit name part, a DNS label and an nginx token.
    """
    _string(field, value)
    if not _LABEL.match(value):
        raise ValidationError(
            field, value,
            "use 1-63 lower-case letters, digits and '-', not starting or ending with '-'")
    return value


def app_name(value, field="app"):
    return name(value, field)


def container_name(value, field="container"):
    """An LXD instance name: a :func:`name` that does not start with a digit (LXD's rule)."""
    name(value, field)
    if value[0].isdigit():
        raise ValidationError(field, value, "LXD instance names cannot start with a digit")
    return value


def domain(value, field="domain", wildcard=False):
    """A lower-case fully qualified domain name (no trailing dot).

    At most 253 characters, at least two labels, each an RFC 1123 label; the last is not
    all digits (so an IPv4 address is not a domain). With ``wildcard``, the first label
    may be '*'.
    """
    _string(field, value, 253)
    if value != value.lower():
        raise ValidationError(field, value, "must be lower case")
    labels = value.split(".")
    if len(labels) < 2:
        raise ValidationError(field, value, "must be a fully qualified name such as app.example.com")
    if labels[0] == "*":
        if not wildcard:
            raise ValidationError(field, value, "wildcard domains are not allowed here")
        labels = labels[1:]
        if len(labels) < 2:
            raise ValidationError(field, value, "a wildcard needs a parent domain such as *.example.com")
    for label in labels:
        if not _LABEL.match(label):
            raise ValidationError(
                field, value,
                "each label must be 1-63 lower-case letters, digits and '-', not starting or "
                "ending with '-'")
    if labels[-1].isdigit():
        raise ValidationError(field, value, "the top-level label cannot be all digits")
    return value


def domains(values, field="domains", wildcard=False):
    """A list of distinct domains (see :func:`domain`)."""
    if isinstance(values, str) or not isinstance(values, (list, tuple)):
        raise ValidationError(field, values, "must be a list of domains")
    seen = []
    for index, value in enumerate(values):
        checked = domain(value, "%s[%d]" % (field, index), wildcard)
        if checked in seen:
            raise ValidationError(field, value, "is listed twice")
        seen.append(checked)
    return seen


def repo_url(value, field="repo"):
    """A git repository URL: https://, ssh://, git://, file:// or scp-like user@host:path.

    Never starts with '-' (git would read it as an option), has no whitespace or control
    characters, and no credentials in https URLs (they would end up in logs).
    """
    _string(field, value, 2048)
    if not value:
        raise ValidationError(field, value, "must not be empty")
    if value.startswith("-"):
        raise ValidationError(field, value, "must not start with '-'")
    if _CONTROL.search(value) or any(ch.isspace() for ch in value):
        raise ValidationError(field, value, "must not contain spaces or control characters")
    match = _URL.match(value)
    if match:
        scheme, authority = match.group("scheme"), match.group("authority")
        if scheme == "file":
            if authority or not match.group("path"):
                raise ValidationError(field, value, "file URLs look like file:///path/to/repo.git")
            _no_dotdot(field, value, match.group("path"))
            return value
        if scheme == "https" and "@" in authority:
            raise ValidationError(field, value,
                                  "credentials in https URLs would be logged: use a deploy key "
                                  "(ssh) or a git credential helper")
        if not authority or not _HOST.match(authority):
            raise ValidationError(field, value, "the URL needs a valid host")
        _no_dotdot(field, value, match.group("path") or "")
        return value
    if "://" in value:
        raise ValidationError(field, value, "the scheme must be https, ssh, git or file")
    match = _SCP_LIKE.match(value)
    if match and ("." in match.group("host") or match.group("host") == "localhost"):
        _no_dotdot(field, value, match.group("path"))
        return value
    raise ValidationError(field, value,
                          "use an https://, ssh://, git:// or file:// URL, or user@host:path")


def _no_dotdot(field, value, path):
    if ".." in path.split("/"):
        raise ValidationError(field, value, "must not contain '..'")


def git_ref(value, field="ref"):
    """A branch, tag or commit, by git's check-ref-format rules, never starting with '-'."""
    _string(field, value, 255)
    rules = (
        (not value, "must not be empty"),
        (value.startswith("-"), "must not start with '-'"),
        (_CONTROL.search(value) is not None, "must not contain control characters"),
        (any(ch in value for ch in " ~^:?*[\\"), "must not contain spaces or any of ~ ^ : ? * [ \\"),
        (".." in value, "must not contain '..'"),
        ("@{" in value, "must not contain '@{'"),
        (value == "@", "must not be '@'"),
        (value.startswith("/") or value.endswith("/") or "//" in value,
         "must not start or end with '/' or contain '//'"),
        (value.endswith("."), "must not end with '.'"),
    )
    for broken, rule in rules:
        if broken:
            raise ValidationError(field, value, rule)
    for component in value.split("/"):
        if component.startswith("."):
            raise ValidationError(field, value, "no part between slashes may start with '.'")
        if component.endswith(".lock"):
            raise ValidationError(field, value, "no part between slashes may end with '.lock'")
    return value


def port(value, field="port"):
    """A TCP port, 1 to 65535."""
    if isinstance(value, bool):
        raise ValidationError(field, value, "must be a whole number from 1 to 65535")
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValidationError(field, value, "must be a whole number from 1 to 65535")
    return value


def count(value, field, minimum=0, maximum=1000):
    """A whole number within bounds (releases to keep, backups to keep, timeouts)."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ValidationError(field, value, "must be a whole number from %d to %d" % (minimum, maximum))
    return value


def relative_path(value, field="path"):
    """A path relative to an app's release: no leading '/', no '..', no NUL or newline."""
    _string(field, value, 1024)
    if not value:
        raise ValidationError(field, value, "must not be empty")
    if _CONTROL.search(value):
        raise ValidationError(field, value, "must not contain control characters (NUL, newline, ...)")
    if value.startswith("/"):
        raise ValidationError(field, value, "must be relative (no leading '/')")
    if value.startswith("-"):
        raise ValidationError(field, value, "must not start with '-'")
    _no_dotdot(field, value, value)
    return value


def url_path(value, field="health_path"):
    """An absolute URL path such as /healthz: printable ASCII, no spaces, no '..'."""
    _string(field, value, 1024)
    if not value.startswith("/"):
        raise ValidationError(field, value, "must start with '/'")
    if any(not (0x21 <= ord(ch) <= 0x7E) for ch in value):
        raise ValidationError(field, value, "must be printable ASCII with no spaces")
    if any(ch in value for ch in "\"'`{};$\\<>"):
        raise ValidationError(field, value, "must not contain quotes, braces, ';', '$', '\\\\', '<' or '>'")
    _no_dotdot(field, value, value.split("?", 1)[0])
    return value


def env_name(value, field="environment"):
    """An environment variable name: letters, digits and '_', not starting with a digit."""
    _string(field, value)
    if not _ENV_NAME.match(value):
        raise ValidationError(field, value,
                              "variable names use letters, digits and '_' and do not start with a digit")
    return value


def env_value(value, field="environment"):
    """An environment variable value: any text on one line (no NUL, no newline)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    _string(field, value, 32768)
    if "\x00" in value or "\n" in value or "\r" in value:
        raise ValidationError(field, value, "must be on one line (no NUL or newline)")
    return value


def command(value, field="command"):
    """A command line for the app's shell (start command, deploy command).

    It is shell code by design and runs as the app inside its container; what is refused
    is what could break out of the file it is written to: NUL, newlines, control
    characters, and a leading '-'.
    """
    _string(field, value, 4096)
    if not value.strip():
        raise ValidationError(field, value, "must not be empty")
    if _CONTROL.search(value.replace("\t", " ")):
        raise ValidationError(field, value, "must be one line with no control characters")
    if value.lstrip().startswith("-"):
        raise ValidationError(field, value, "must not start with '-'")
    return value


def ipv4(value, field="ipv4", network=None):
    """A single IPv4 address, inside ``network`` (CIDR) when given, not its network or broadcast."""
    _string(field, value, 15)
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError:
        raise ValidationError(field, value, "must be an IPv4 address such as 10.210.0.10") from None
    if network:
        net = ipaddress.IPv4Network(network, strict=False)
        if address not in net or address in (net.network_address, net.broadcast_address):
            raise ValidationError(field, value, "must be a host address inside %s" % net)
    return str(address)


def lxd_endpoint(value, field="endpoint"):
    """Where an LXD API answers: 'unix:', 'unix:/path/to/socket' or 'https://host[:port]'."""
    _string(field, value, 1024)
    if _CONTROL.search(value) or any(ch.isspace() for ch in value):
        raise ValidationError(field, value, "must not contain spaces or control characters")
    if value == "unix:" or (value.startswith("unix:/") and ".." not in value.split("/")):
        return value
    match = re.match(r"^https://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?/?$", value)
    if match and (match.group(2) is None or 1 <= int(match.group(2)) <= 65535):
        return value.rstrip("/")
    raise ValidationError(field, value, "use unix:, unix:/path/to/unix.socket or https://host:8443")


def size(value, field="size"):
    """An LXD size such as 512MB or 2GiB."""
    _string(field, value, 20)
    if not _SIZE.match(value):
        raise ValidationError(field, value, "use a number and a unit: 512MB, 2GiB, 20GB")
    return value


def cpu_limit(value, field="cpu"):
    """An LXD CPU limit: a number of CPUs (1-512) or a CPU set such as 0-1 or 0,2."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    _string(field, value, 64)
    if re.match(r"^[1-9][0-9]{0,2}$", value) and int(value) <= 512:
        return value
    if re.match(r"^[0-9]{1,3}(-[0-9]{1,3})?(,[0-9]{1,3}(-[0-9]{1,3})?)*$", value) and (
            "," in value or "-" in value):
        return value
    raise ValidationError(field, value, "use a number of CPUs (2) or a CPU set (0-1, 0,2)")


def text(value, field="notes", max_length=4000):
    """Free text for humans (notes): any printable text, newlines and tabs allowed."""
    _string(field, value, max_length)
    if _CONTROL.search(value.replace("\n", " ").replace("\t", " ")):
        raise ValidationError(field, value, "must not contain control characters")
    return value
