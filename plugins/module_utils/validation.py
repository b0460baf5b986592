# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""DPL's one validation layer.

Every name, domain, git ref, URL, path, port and command that a user gives DPL passes
through a function here before it reaches a shell, a template, a path or the registry:
the CLI, the JSON API, the web forms, the inventory plugin and the modules all call these
same functions. Each returns the value in its canonical form or raises
:class:`ValidationError`, whose message names the field, the (quoted) value and the rule.

The rules are deliberately narrower than what the underlying tools accept wherever the
extra room is only useful to an attacker: a value that can never contain a newline, a
brace, a quote or a leading '-' cannot break out of the nginx file, the YAML, the shell
line or the argument list it ends up in, whatever the code that writes it forgets.

Patterns are matched with ``fullmatch``: ``re.match(r"^...$")`` would accept a trailing
newline, because ``$`` also matches just before one.

Standard library only, Python 3.8 syntax: modules import this on the managed host.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from urllib.parse import unquote

__all__ = [
    "DplError", "ValidationError",
    "app_name", "name", "container_name", "domain", "domains", "repo_url", "git_ref", "port",
    "relative_path", "url_path", "env_name", "env_value", "command", "ipv4", "lxd_endpoint",
    "size", "cpu_limit", "count", "text",
    "names", "env", "absolute_path", "ipv4_interface", "interface_name", "image", "token", "line",
    "choice", "commit", "output", "secret_value", "flag", "app_port", "app_ports", "keep_count",
    "ssh_repo_host", "known_host_name", "known_host", "host_key", "git_token", "git_user",
]

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What no value meant for one line may hold: C0 controls but tab (vertical tab and form feed
# end a line for some readers, ESC drives terminals), DEL, C1 controls (NEL ends a line),
# the Unicode line and paragraph separators, and lone surrogates (not text at all).
_NOT_ONE_LINE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_SIZE = re.compile(r"[1-9][0-9]{0,12}(?:B|kB|MB|GB|TB|KiB|MiB|GiB|TiB)")
_SCP_LIKE = re.compile(
    r"(?:[A-Za-z0-9][A-Za-z0-9._-]*@)?(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*):(?P<path>[^\\]+)")
_URL = re.compile(r"(?P<scheme>https|ssh|git|file)://(?P<authority>[^/?#\s]*)(?P<path>/\S*)?")
_HOST = re.compile(
    r"(?:[A-Za-z0-9][A-Za-z0-9._~-]*@)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*)(?::[0-9]{1,5})?")
# Characters a path may hold: enough for any real file name in a repository, and none that
# a shell, a template engine or a config file gives a meaning to.
_PATH = re.compile(r"[A-Za-z0-9._+@=,/-]+")
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")
_COMMIT = re.compile(r"[0-9a-f]{4,64}")
_HTTPS_ENDPOINT = re.compile(r"https://([A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?/?")
# What a shell, a Jinja template or an nginx file would read as syntax.
_SHELL_META = "\"'`$;|&<>(){}\\!"
_DIGITS = "0123456789"

# Names that would mean something else to Ansible if a container were called that.
_RESERVED_CONTAINER_NAMES = ("localhost",)

# The name of the certificate nginx's default server presents to requests for a domain DPL
# does not serve: no app may claim it.
DEFAULT_CERTIFICATE_NAME = "default.invalid"

# The only folder a file:// repository URL may name, in the container that fetches it:
# any other would let an app deploy the container's own files or another project's checkout.
FILE_REPO_ROOT = "/srv/dpl/git/"


class DplError(Exception):
    """The root of every error DPL reports to a user (the control plane's kinds are in
    dpl_web/errors.py). It lives here because modules import this file and nothing else.

    Each kind has a stable ``code`` that clients may rely on, the ``exit_code`` of the CLI,
    the ``http_status`` of the API, and a ``hint``: what to do next, in words that name no
    particular client (no command line, no URL).
    """

    code = "failure"
    exit_code = 1
    http_status = 500
    hint = ""
    # A machine-readable name for what would fix it ("cascade", "edit", ...), which each
    # client may turn into its own advice (a command line, a button).
    remedy = None

    def __init__(self, message, hint=None, remedy=None):
        super().__init__(message)
        if hint is not None:
            self.hint = hint
        if remedy is not None:
            self.remedy = remedy

    def explain(self):
        """The message and, in brackets, what to do: the sentence to show a person."""
        return "%s (%s)" % (self, self.hint) if self.hint else str(self)


class ValidationError(DplError, ValueError):
    """A value was refused. ``field``, ``value`` and ``rule`` say which, what and why."""

    code = "invalid"
    exit_code = 4
    http_status = 422
    hint = "nothing was changed: correct the value and try again"

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


def _ascii_digits(value):
    return isinstance(value, str) and value != "" and all(ch in _DIGITS for ch in value)


def _no_shell_meta(field, value):
    found = sorted(set(ch for ch in value if ch in _SHELL_META))
    if found:
        raise ValidationError(field, value, "must not contain any of %s" % " ".join(found))


def name(value, field="name"):
    """A DPL object name: an RFC 1123 label.

    Lower-case letters, digits and '-', 1 to 63 characters, not starting or ending
    with '-'. Used for projects, apps and hosts; safe as a path component, a systemd
    unit name part, a DNS label and an nginx token.
    """
    _string(field, value)
    if not _LABEL.fullmatch(value):
        raise ValidationError(
            field, value,
            "use 1-63 lower-case letters, digits and '-', not starting or ending with '-'")
    return value


def app_name(value, field="app"):
    return name(value, field)


def container_name(value, field="container"):
    """An LXD instance name: a :func:`name` that does not start with a digit (LXD's rule).

    'localhost' is refused too: it is also the name of Ansible's implicit local host.
    """
    name(value, field)
    if value[0].isdigit():
        raise ValidationError(field, value, "LXD instance names cannot start with a digit")
    if value in _RESERVED_CONTAINER_NAMES:
        raise ValidationError(field, value, "is reserved (Ansible's name for this machine)")
    return value


def names(values, field="names"):
    """A list of distinct :func:`name` values (LXD profiles, for example)."""
    if isinstance(values, str) or not isinstance(values, (list, tuple)):
        raise ValidationError(field, values, "must be a list of names")
    seen = []
    for index, value in enumerate(values):
        checked = name(value, "%s[%d]" % (field, index))
        if checked in seen:
            raise ValidationError(field, value, "is listed twice")
        seen.append(checked)
    return seen


def domain(value, field="domain", wildcard=False, default_certificate=False):
    """A lower-case fully qualified domain name (no trailing dot).

    At most 253 characters, at least two labels, each an RFC 1123 label; the last is not a
    number (all digits, or 0x and hex digits: an address to a URL parser, as in
    1.2.3.4.5 or a.0x1). With ``wildcard``, the first label may be '*'. International
    names are written in punycode (xn--...). :data:`DEFAULT_CERTIFICATE_NAME` is refused
    unless ``default_certificate`` (for the module that makes that certificate).
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
        if not _LABEL.fullmatch(label):
            raise ValidationError(
                field, value,
                "each label must be 1-63 lower-case ASCII letters, digits and '-', not starting or "
                "ending with '-' (write international names in punycode)")
    if re.fullmatch(r"[0-9]+|0x[0-9a-f]*", labels[-1]):
        raise ValidationError(field, value, "the top-level label cannot be a number (digits, or 0x and hex digits)")
    if value == DEFAULT_CERTIFICATE_NAME and not default_certificate:
        raise ValidationError(field, value, "is the name of DPL's own default certificate, not an app's domain")
    return value


def domains(values, field="domains", wildcard=False, default_certificate=False):
    """A list of distinct domains (see :func:`domain`)."""
    if isinstance(values, str) or not isinstance(values, (list, tuple)):
        raise ValidationError(field, values, "must be a list of domains")
    seen = []
    for index, value in enumerate(values):
        checked = domain(value, "%s[%d]" % (field, index), wildcard, default_certificate)
        if checked in seen:
            raise ValidationError(field, value, "is listed twice")
        seen.append(checked)
    return seen


def repo_url(value, field="repo"):
    """A git repository URL: https://, ssh://, git://, file:// or scp-like user@host:path.

    Never starts with '-' (git would read it as an option), is printable ASCII with no
    whitespace, quotes, braces or shell metacharacters, and has no credentials in https
    URLs (they would end up in logs). Never git's remote-helper form (``transport::address``
    runs a helper program), an scp-like path starting with '-', a port above 65535, a '..'
    segment (percent-encoded or not), or a file:// URL outside :data:`FILE_REPO_ROOT`.
    """
    _string(field, value, 2048)
    if not value:
        raise ValidationError(field, value, "must not be empty")
    if value.startswith("-"):
        raise ValidationError(field, value, "must not start with '-'")
    if _CONTROL.search(value) or any(ch.isspace() for ch in value):
        raise ValidationError(field, value, "must not contain spaces or control characters")
    if not value.isascii():
        raise ValidationError(field, value, "must be ASCII (write international host names in punycode)")
    _no_shell_meta(field, value)
    match = _URL.fullmatch(value)
    if match:
        scheme, authority = match.group("scheme"), match.group("authority")
        if scheme == "file":
            if authority or not match.group("path"):
                raise ValidationError(field, value, "file URLs look like file:///path/to/repo.git")
            path = match.group("path")
            _no_dotdot(field, value, path)
            if not unquote(path).startswith(FILE_REPO_ROOT) or "%" in path:
                raise ValidationError(field, value, "a file:// repository must be under %s in the container "
                                                    "(DPL's own git folder)" % FILE_REPO_ROOT)
            return value
        if scheme == "https" and "@" in authority:
            raise ValidationError(field, value,
                                  "credentials in https URLs would be logged: give the URL without them and "
                                  "set the project's token (dpl project token PROJECT), or use an ssh URL "
                                  "with the project's deploy key (dpl project key PROJECT)")
        if not authority or not _HOST.fullmatch(authority):
            raise ValidationError(field, value, "the URL needs a valid host")
        port_part = authority.rpartition("]")[2].rpartition("@")[2].partition(":")[2]
        if port_part and not 1 <= int(port_part) <= 65535:
            raise ValidationError(field, value, "the port must be from 1 to 65535")
        _no_dotdot(field, value, match.group("path") or "")
        return value
    if "://" in value:
        raise ValidationError(field, value, "the scheme must be https, ssh, git or file")
    if "::" in value:
        raise ValidationError(field, value, "git's remote-helper form (transport::address) is not allowed")
    match = _SCP_LIKE.fullmatch(value)
    if match and ("." in match.group("host") or match.group("host") == "localhost"):
        if match.group("path").startswith("-"):
            raise ValidationError(field, value, "the path after ':' must not start with '-'")
        _no_dotdot(field, value, match.group("path"))
        return value
    raise ValidationError(field, value,
                          "use an https://, ssh://, git:// or file:// URL, or user@host:path")


def _no_dotdot(field, value, path):
    # Decoded as a server would decode it: %2e%2e is '..' too.
    if ".." in path.split("/") or ".." in unquote(path).split("/"):
        raise ValidationError(field, value, "must not contain '..' (encoded or not)")


def git_ref(value, field="ref"):
    """A branch, tag or commit, by git's check-ref-format rules, never starting with '-'.

    DPL is stricter than git in one way: a ref is printable ASCII without quotes, braces
    or shell metacharacters, so it is safe in a log line, a shell word and a template.
    """
    _string(field, value, 255)
    rules = (
        (not value, "must not be empty"),
        (value.startswith("-"), "must not start with '-'"),
        (_CONTROL.search(value) is not None, "must not contain control characters"),
        (not value.isascii(), "must be ASCII"),
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
    _no_shell_meta(field, value)
    for component in value.split("/"):
        if component.startswith("."):
            raise ValidationError(field, value, "no part between slashes may start with '.'")
        if component.endswith(".lock"):
            raise ValidationError(field, value, "no part between slashes may end with '.lock'")
    return value


def commit(value, field="commit"):
    """A full or abbreviated git commit id: 4 to 64 lower-case hexadecimal digits."""
    _string(field, value, 64)
    if not _COMMIT.fullmatch(value):
        raise ValidationError(field, value, "must be 4-64 lower-case hexadecimal digits")
    return value


# Every app has two ports, its own and the next: a deploy without downtime starts the new
# release on the one that is not live (docs/deploy.md). The registry keeps both for the app.
APP_PORT_COUNT = 2


def app_ports(port):
    """The ports an app with ``port`` uses, in order: its slots."""
    return tuple(range(port, port + APP_PORT_COUNT))


def app_port(value, field="port"):
    """An app's port: a TCP port whose following ports (:func:`app_ports`) exist too."""
    value = port(value, field)
    if app_ports(value)[-1] > 65535:
        raise ValidationError(field, value, "must be at most %d: the app also uses the next %s"
                              % (65536 - APP_PORT_COUNT, "port" if APP_PORT_COUNT == 2 else "ports"))
    return value


def port(value, field="port"):
    """A TCP port, 1 to 65535."""
    if isinstance(value, bool):
        raise ValidationError(field, value, "must be a whole number from 1 to 65535")
    if _ascii_digits(value) and len(value) <= 5:
        value = int(value)
    if not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValidationError(field, value, "must be a whole number from 1 to 65535")
    return value


def count(value, field, minimum=0, maximum=1000):
    """A whole number within bounds (releases to keep, backups to keep, timeouts)."""
    if _ascii_digits(value) and len(value) <= 18:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ValidationError(field, value, "must be a whole number from %d to %d" % (minimum, maximum))
    return value


# How many releases and backups of an app are kept: one bound for the registry and the modules.
KEEP_MAX = 100


def keep_count(value, field):
    """``keep_releases`` or ``keep_backups``: 1 to :data:`KEEP_MAX`."""
    return count(value, field, 1, KEEP_MAX)


def relative_path(value, field="path"):
    """A path relative to an app's release: no leading '/', no '..', no NUL or newline.

    Only letters, digits and ``. _ + @ = , / -`` are allowed, so the path is one word in
    any shell and means nothing to a template engine.
    """
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
    if not _PATH.fullmatch(value):
        raise ValidationError(field, value, "use only ASCII letters, digits and . _ + @ = , / -")
    return value


def absolute_path(value, field="path"):
    """An absolute path on a machine DPL manages: starts with '/', no '..', no NUL or newline.

    The same characters as :func:`relative_path`: certificate files, nginx's site
    directory and the like never need more, and such a path is safe unquoted anywhere.
    """
    _string(field, value, 1024)
    if _CONTROL.search(value):
        raise ValidationError(field, value, "must not contain control characters (NUL, newline, ...)")
    if not value.startswith("/"):
        raise ValidationError(field, value, "must be absolute (start with '/')")
    _no_dotdot(field, value, value)
    if not _PATH.fullmatch(value):
        raise ValidationError(field, value, "use only ASCII letters, digits and . _ + @ = , / -")
    return value


def url_path(value, field="health_path"):
    """An absolute URL path such as /healthz: printable ASCII, no spaces, no '..'."""
    _string(field, value, 1024)
    if not value.startswith("/"):
        raise ValidationError(field, value, "must start with '/'")
    if any(not (0x21 <= ord(ch) <= 0x7E) for ch in value):
        raise ValidationError(field, value, "must be printable ASCII with no spaces")
    if any(ch in value for ch in "\"'`{};$\\<>|#"):
        raise ValidationError(field, value,
                              "must not contain quotes, braces, ';', '$', '\\\\', '<', '>', '|' or '#'")
    _no_dotdot(field, value, value.split("?", 1)[0])
    return value


def env_name(value, field="environment"):
    """An environment variable name: letters, digits and '_', not starting with a digit."""
    _string(field, value)
    if not _ENV_NAME.fullmatch(value):
        raise ValidationError(field, value,
                              "variable names use letters, digits and '_' and do not start with a digit")
    return value


def env_value(value, field="environment"):
    """An environment variable value: any text on one line.

    Quotes, '$' and braces are allowed (passwords contain them): whatever writes the value
    into a file quotes it for that file, and the inventory marks it unsafe for templates.
    What could end the line or drive a terminal is refused (see ``_NOT_ONE_LINE``); tabs
    are kept.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    _string(field, value, 32768)
    if _NOT_ONE_LINE.search(value):
        raise ValidationError(field, value, "must be one line of text (no NUL, newline, vertical tab, form feed, "
                                            "escape or other control character, no U+2028/2029)")
    return value


# A secret shorter than this cannot be masked in logs: hiding every "ab" would garble them.
SECRET_MIN_LENGTH = 4


def secret_value(value, field="secret"):
    """A secret variable's value: an :func:`env_value` of at least :data:`SECRET_MIN_LENGTH`
    characters. The error never quotes the value."""
    try:
        value = env_value(value, field)
    except ValidationError as exc:
        raise ValidationError(field, "********", exc.rule) from None
    if len(value) < SECRET_MIN_LENGTH:
        raise ValidationError(field, "********", "a secret must be at least %d characters: a shorter one "
                                                 "cannot be masked in logs (make it a plain variable)"
                              % SECRET_MIN_LENGTH)
    return value


# A login password: long enough that the throttle on failed logins makes guessing hopeless,
# short enough that hashing it cannot be made a denial of service.
PASSWORD_MIN_LENGTH = 12
PASSWORD_MAX_LENGTH = 1024


def password(value, field="password"):
    """A user's password: PASSWORD_MIN_LENGTH to PASSWORD_MAX_LENGTH characters of one line.
    The error never quotes it."""
    if not isinstance(value, str) or _NOT_ONE_LINE.search(value):
        raise ValidationError(field, "********", "must be one line of text")
    if not PASSWORD_MIN_LENGTH <= len(value) <= PASSWORD_MAX_LENGTH:
        raise ValidationError(field, "********", "must be %d to %d characters long"
                              % (PASSWORD_MIN_LENGTH, PASSWORD_MAX_LENGTH))
    return value


_SINCE = re.compile(r"[0-9A-Za-z][0-9A-Za-z :.+-]{0,39}|-[0-9]{1,6}[smhdw]")


def journal_since(value, field="since"):
    """A time journalctl understands: 2026-12-01 10:00, yesterday, today, -2h, -30m, ..."""
    _string(field, value, 40)
    if not _SINCE.fullmatch(value):
        raise ValidationError(field, value, "use a time such as '2026-12-01 10:00', 'yesterday' or '-2h'")
    return value


def env(values, field="env"):
    """A mapping of :func:`env_name` to :func:`env_value`; returns a new dict."""
    if not isinstance(values, dict):
        raise ValidationError(field, values, "must be a mapping of NAME to value")
    checked = {}
    for key, value in values.items():
        env_name(key, "%s name" % field)
        checked[key] = env_value(value, "%s[%s]" % (field, key))
    return checked


def command(value, field="command"):
    """A command line for the app's shell (start command, deploy command).

    It is shell code by design and runs as the app inside its container; what is refused
    is what could break out of the file it is written to: NUL, newlines, control
    characters, and a leading '-'.
    """
    _string(field, value, 4096)
    if not value.strip():
        raise ValidationError(field, value, "must not be empty")
    if _NOT_ONE_LINE.search(value):
        raise ValidationError(field, value, "must be one line with no control characters")
    if value.lstrip().startswith("-"):
        raise ValidationError(field, value, "must not start with '-'")
    return value


def ipv4(value, field="ipv4", network=None):
    """A single IPv4 address, inside ``network`` (CIDR) when given, not its network or broadcast."""
    _string(field, value, 15)
    try:
        if not value.isascii():
            raise ValueError(value)
        address = ipaddress.IPv4Address(value)
    except ValueError:
        raise ValidationError(field, value, "must be an IPv4 address such as 10.210.0.10") from None
    if network:
        net = ipaddress.IPv4Network(network, strict=False)
        if address not in net or address in (net.network_address, net.broadcast_address):
            raise ValidationError(field, value, "must be a host address inside %s" % net)
    return str(address)


def ipv4_interface(value, field="bridge_ipv4"):
    """An address with its prefix length, such as 10.210.0.1/24: a bridge's own address.

    The prefix is 8 to 30 bits (a network with room for containers), and the address is a
    host address of that network.
    """
    _string(field, value, 18)
    address, _sep, prefix = value.partition("/")
    if not _ascii_digits(prefix) or len(prefix) > 2 or not 8 <= int(prefix) <= 30:
        raise ValidationError(field, value, "use an address and a prefix length of 8-30, such as 10.210.0.1/24")
    ipv4(address, field, network="%s/%s" % (address, prefix))
    return str(ipaddress.IPv4Interface(value))


def interface_name(value, field="bridge"):
    """A Linux network interface name made of :func:`name` characters: at most 15 of them."""
    name(value, field)
    if len(value) > 15:
        raise ValidationError(field, value, "network interface names are at most 15 characters")
    return value


def image(value, field="image"):
    """An LXD image alias or fingerprint: ASCII letters, digits, '.', '_', '-' and '/'."""
    _string(field, value, 255)
    if not _IMAGE.fullmatch(value) or ".." in value.split("/") or "//" in value:
        raise ValidationError(
            field, value,
            "use ASCII letters, digits, '.', '_', '-' and '/', starting with a letter or digit")
    return value


def token(value, field="status", max_length=64):
    """A one-word status or keyword such as Running: ASCII letters, digits, '.', '_', '-'."""
    _string(field, value, max_length)
    if not _TOKEN.fullmatch(value):
        raise ValidationError(field, value,
                              "use one word of ASCII letters, digits, '.', '_' and '-'")
    return value


def flag(value, field="flag"):
    """A yes/no setting: a boolean (JSON true or false), never a string that looks like one."""
    if not isinstance(value, bool):
        raise ValidationError(field, value, "must be true or false")
    return value


def choice(value, field, choices):
    """One of ``choices``; the message lists them."""
    if value not in choices:
        raise ValidationError(field, value, "must be one of %s" % ", ".join(choices))
    return value


def lxd_endpoint(value, field="endpoint"):
    """Where an LXD API answers: 'unix:', 'unix:/path/to/socket' or 'https://host[:port]'."""
    _string(field, value, 1024)
    if _CONTROL.search(value) or any(ch.isspace() for ch in value):
        raise ValidationError(field, value, "must not contain spaces or control characters")
    if value == "unix:":
        return value
    if value.startswith("unix:/") and _PATH.fullmatch(value[5:]) and ".." not in value.split("/"):
        return value
    match = _HTTPS_ENDPOINT.fullmatch(value)
    if match and (match.group(2) is None or 1 <= int(match.group(2)) <= 65535):
        return value.rstrip("/")
    raise ValidationError(field, value, "use unix:, unix:/path/to/unix.socket or https://host:8443")


def size(value, field="size"):
    """An LXD size such as 512MB or 2GiB."""
    _string(field, value, 20)
    if not _SIZE.fullmatch(value):
        raise ValidationError(field, value, "use a number and a unit: 512MB, 2GiB, 20GB")
    return value


def cpu_limit(value, field="cpu"):
    """An LXD CPU limit: a number of CPUs (1-512) or a CPU set such as 0-1 or 0,2."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    _string(field, value, 64)
    if re.fullmatch(r"[1-9][0-9]{0,2}", value) and int(value) <= 512:
        return value
    if re.fullmatch(r"[0-9]{1,3}(?:-[0-9]{1,3})?(?:,[0-9]{1,3}(?:-[0-9]{1,3})?)*", value) and (
            "," in value or "-" in value):
        return value
    raise ValidationError(field, value, "use a number of CPUs (2) or a CPU set (0-1, 0,2)")


def line(value, field="summary", max_length=200):
    """One line of printable text for humans (who started a job, a short summary)."""
    _string(field, value, max_length)
    if _CONTROL.search(value):
        raise ValidationError(field, value, "must be one line with no control characters")
    return value


def text(value, field="notes", max_length=4000):
    """Free text for humans (notes): any printable text, newlines and tabs allowed.

    Windows line ends (what browsers send from a textarea) become plain newlines.
    """
    _string(field, value, max_length)
    value = value.replace("\r\n", "\n")
    if _CONTROL.search(value.replace("\n", " ").replace("\t", " ")):
        raise ValidationError(field, value, "must not contain control characters")
    return value


def output(value, field="log", max_length=16 * 1024 * 1024):
    """Program output kept for humans (a job's log): any text, as programs write it.

    It is not user input and may hold colour codes and carriage returns, so nothing is
    refused but non-text: NUL characters are dropped, and an over-long log keeps its last
    ``max_length`` characters (where the error usually is).
    """
    _string(field, value)
    value = value.replace("\x00", "")
    if len(value) > max_length:
        value = value[-max_length:]
    return value


# -- private repositories ---------------------------------------------------------------

# The host key types OpenSSH servers offer (a pin is one of these).
HOST_KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa")
# How known_hosts names a host: "host", or "[host]:port" for another port than 22.
# (IPv6 addresses have colons, and dots when they embed an IPv4 one: ::ffff:10.0.0.1.)
_KNOWN_HOST = re.compile(r"\[(?P<bracketed>[A-Za-z0-9:][A-Za-z0-9.:-]*)\]:(?P<port>[0-9]{1,5})|"
                         r"(?P<plain>[A-Za-z0-9][A-Za-z0-9.-]*|[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*)")
_BASE64 = re.compile(r"[A-Za-z0-9+/]{16,16384}={0,2}")
_GIT_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}")


def ssh_repo_host(repo):
    """The ``(host, port)`` git connects to over ssh for ``repo`` (an ssh:// or scp-like
    URL already checked by :func:`repo_url`), or None for https, git and file URLs. The
    host is lowercased, as ssh does before it looks it up in known_hosts."""
    match = _URL.fullmatch(repo)
    if match:
        if match.group("scheme") != "ssh":
            return None
        hostport = match.group("authority").rpartition("@")[2]
        if hostport.startswith("["):
            host, _bracket, rest = hostport[1:].partition("]")
            return host.lower(), int(rest[1:]) if rest.startswith(":") else 22
        host, _colon, port = hostport.partition(":")
        return host.lower(), int(port) if port else 22
    match = _SCP_LIKE.fullmatch(repo)
    return (match.group("host").lower(), 22) if match else None


def known_host_name(host, port=22):
    """The name OpenSSH's known_hosts gives ``host`` on ``port``."""
    return host if port == 22 else "[%s]:%d" % (host, port)


def known_host(value, field="host"):
    """A host as known_hosts names it: ``host``, or ``[host]:port`` (never hashed),
    lowercased as ssh writes it."""
    _string(field, value, 300)
    match = _KNOWN_HOST.fullmatch(value)
    if not match or (match.group("port") and not 1 <= int(match.group("port")) <= 65535):
        raise ValidationError(field, value, "name one host, or [host]:port for another port than 22")
    return value.lower()


def host_key(value, field="host_keys"):
    """One pinned host key as known_hosts has it, ``NAME TYPE BASE64`` (unhashed, one name,
    no marker): returns ``(name, type, key)``."""
    _string(field, value, 20000)
    parts = value.split()
    if len(parts) < 3 or _NOT_ONE_LINE.search(value):
        raise ValidationError(field, value[:80], "a host key line is 'HOST TYPE KEY' (as ssh-keyscan prints it)")
    name, key_type, key = parts[:3]
    name = known_host(name, field)
    if key_type not in HOST_KEY_TYPES:
        raise ValidationError(field, key_type, "the key type must be one of %s" % ", ".join(HOST_KEY_TYPES))
    try:
        if not _BASE64.fullmatch(key) or not base64.b64decode(key, validate=True):
            raise ValueError(key)
    except ValueError:  # binascii.Error is one
        raise ValidationError(field, key[:40], "the key must be base64") from None
    return name, key_type, key


def git_token(value, field="token"):
    """An access token for git over https (a GitHub, GitLab, Gitea or Forgejo token): 8 to
    4096 printable ASCII characters, no spaces. The error never quotes the value."""
    if not isinstance(value, str) or not 8 <= len(value) <= 4096 or not all("!" <= ch <= "~" for ch in value):
        raise ValidationError(field, "********", "a token is 8 to 4096 printable ASCII characters without spaces")
    return value


def git_user(value, field="token_user"):
    """The user name sent with a token (forges accept any for a token; GitLab wants
    'oauth2', GitHub 'x-access-token')."""
    _string(field, value, 100)
    if not _GIT_USER.fullmatch(value):
        raise ValidationError(field, value, "letters, digits and . _ @ + - only, starting with a letter or digit")
    return value
