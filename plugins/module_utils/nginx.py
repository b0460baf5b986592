# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""DPL's nginx vhosts: the values they accept, the text they render, and the throwaway
configurations that test a vhost before it is installed.

Everything placed into a vhost passes :mod:`validation` (or the few checks below that the
validation layer does not have yet) first, so no domain, address, path or size can carry
an nginx directive. Standard library only: this runs on the managed host.
"""

from __future__ import annotations

import os
import re

from ansible_collections.dpl.platform.plugins.module_utils import validation
from ansible_collections.dpl.platform.plugins.module_utils.validation import ValidationError

# First line of every file this collection writes into sites-available.
MARKER = "# Managed by DPL (dpl.platform.nginx_vhost): changes here are overwritten."

# The variable the vhosts use for the websocket Connection header. Its map lives in the
# base configuration the role dpl.platform.nginx_edge lays down (conf.d/dpl-proxy.conf).
CONNECTION_UPGRADE_MAP = (
    "map $http_upgrade $dpl_connection_upgrade {\n"
    "    default upgrade;\n"
    "    '' close;\n"
    "}\n"
)

_SIZE = re.compile(r"^(0|[1-9][0-9]{0,8}[kmg]?)$")
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._@+/-]*[A-Za-z0-9._@+-]$")

# Checks the validation layer does not offer (yet); same error type and message style.


def body_size(value, field="client_max_body_size"):
    """An nginx size for client_max_body_size: 0 (no limit) or a number with k, m or g."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValidationError(field, value, "must be a string such as 10m")
    canonical = value.lower()
    if not _SIZE.match(canonical):
        raise ValidationError(field, value, "use a number of bytes with an optional k, m or g "
                                            "suffix (such as 512k, 10m, 1g), or 0 for no limit")
    return canonical


def seconds(value, field, maximum=86400):
    """A timeout in whole seconds, 1 to ``maximum``."""
    return validation.count(value, field, 1, maximum)


def absolute_path(value, field):
    """An absolute file path made of letters, digits and ._@+-/ only, with no '..' part."""
    if not isinstance(value, str):
        raise ValidationError(field, value, "must be a string")
    if len(value) > 1024:
        raise ValidationError(field, value, "must be at most 1024 characters")
    if not _SAFE_PATH.match(value):
        raise ValidationError(field, value, "must be an absolute path of letters, digits and "
                                            "._@+-/ (no spaces, quotes, ';' or '$'), not ending in '/'")
    if ".." in value.split("/") or "//" in value:
        raise ValidationError(field, value, "must not contain '..' or '//'")
    return value


def file_name(domain):
    """The vhost's file name in sites-available and sites-enabled: ``<domain>.conf``."""
    return validation.domain(domain) + ".conf"


def render_vhost(domain, upstream_ipv4, upstream_port, tls_certificate, tls_certificate_key,
                 client_max_body_size="10m", proxy_connect_timeout=5, proxy_send_timeout=60,
                 proxy_read_timeout=60, listen_ipv6=True, upstream_network=None, upstream_backup_ports=()):
    """The vhost of one app domain; every value is validated here, before it is placed.

    With ``upstream_backup_ports`` (an app deployed without downtime: its other slot), nginx
    sends requests to ``upstream_port`` and to a backup port only when that one refuses or
    fails, so a request that meets a slot being stopped is passed on instead of failing.

    Raises :class:`ValidationError` on the first value refused.
    """
    values = dict(
        domain=validation.domain(domain, "domain"),
        ipv4=validation.ipv4(upstream_ipv4, "upstream_ipv4", upstream_network),
        port=validation.port(upstream_port, "upstream_port"),
        certificate=absolute_path(tls_certificate, "tls_certificate"),
        key=absolute_path(tls_certificate_key, "tls_certificate_key"),
        body=body_size(client_max_body_size),
        connect=seconds(proxy_connect_timeout, "proxy_connect_timeout", 75),
        send=seconds(proxy_send_timeout, "proxy_send_timeout"),
        read=seconds(proxy_read_timeout, "proxy_read_timeout"),
    )
    if not isinstance(listen_ipv6, bool):
        raise ValidationError("listen_ipv6", listen_ipv6, "must be true or false")
    backups = [validation.port(port, "upstream_backup_ports") for port in upstream_backup_ports or ()]
    if values["port"] in backups or len(set(backups)) != len(backups):
        raise ValidationError("upstream_backup_ports", upstream_backup_ports,
                              "must differ from upstream_port and from each other")
    if backups:
        # An upstream block only when there is a backup: a plain vhost stays as it was.
        upstream = "upstream dpl_{domain} {{\n    server {ipv4}:{port};\n".format(**values) + "".join(
            "    server %s:%d backup;\n" % (values["ipv4"], port) for port in backups) + "}\n\n"
        target = "dpl_" + values["domain"]
        described = "%s:%s (backup %s)" % (values["ipv4"], values["port"], ", ".join(map(str, backups)))
    else:
        upstream, target = "", "%s:%s" % (values["ipv4"], values["port"])
        described = target
    listen80 = "    listen 80;\n" + ("    listen [::]:80;\n" if listen_ipv6 else "")
    listen443 = "    listen 443 ssl;\n" + ("    listen [::]:443 ssl;\n" if listen_ipv6 else "")
    return (
        "{marker}\n"
        "# App domain {domain}, proxied to {described}.\n"
        "\n"
        "{upstream}"
        "server {{\n"
        "{listen80}"
        "    server_name {domain};\n"
        "    return 301 https://{domain}$request_uri;\n"
        "}}\n"
        "\n"
        "server {{\n"
        "{listen443}"
        "    server_name {domain};\n"
        "\n"
        "    ssl_certificate {certificate};\n"
        "    ssl_certificate_key {key};\n"
        "\n"
        "    client_max_body_size {body};\n"
        "\n"
        "    location / {{\n"
        "        proxy_pass http://{target};\n"
        "        proxy_http_version 1.1;\n"
        "        proxy_set_header Host $host;\n"
        "        proxy_set_header X-Real-IP $remote_addr;\n"
        "        proxy_set_header X-Forwarded-For $remote_addr;\n"
        "        proxy_set_header X-Forwarded-Proto $scheme;\n"
        "        proxy_set_header X-Forwarded-Host $host;\n"
        "        proxy_set_header Upgrade $http_upgrade;\n"
        "        proxy_set_header Connection $dpl_connection_upgrade;\n"
        "        proxy_connect_timeout {connect}s;\n"
        "        proxy_send_timeout {send}s;\n"
        "        proxy_read_timeout {read}s;\n"
        "    }}\n"
        "}}\n"
    ).format(marker=MARKER, listen80=listen80, listen443=listen443, upstream=upstream, target=target,
             described=described, **values)


def standalone_config(vhost_path, pid_path):
    """A main configuration that loads one vhost file and nothing else (for ``nginx -t``)."""
    return (
        "# Throwaway configuration of dpl.platform.nginx_vhost: tests one vhost on its own.\n"
        "pid %s;\n"
        "error_log stderr;\n"
        "events {}\n"
        "http {\n"
        "%s"
        "include %s;\n"
        "}\n"
    ) % (pid_path, CONNECTION_UPGRADE_MAP, vhost_path)


def _include_pattern(directory):
    return re.compile(
        r"^(?P<head>[ \t]*include[ \t]+)(?P<quote>['\"]?)" + re.escape(directory.rstrip("/"))
        + r"/(?P<glob>[^'\";\s]*)(?P=quote)(?P<tail>[ \t]*;)", re.MULTILINE)


def redirect_include(conf_text, conf_dir, sites_enabled, staging):
    """``conf_text`` with its ``include <sites_enabled>/<glob>;`` lines pointing at ``staging``.

    The include may name the directory absolutely or relative to ``conf_dir`` (nginx
    resolves relative includes against the main file's directory). Returns the new text;
    raises ``LookupError`` when no include of ``sites_enabled`` is found, since nginx would
    then not load the vhosts written there.
    """
    sites_enabled = os.path.normpath(sites_enabled)
    spellings = {sites_enabled}
    relative = os.path.relpath(sites_enabled, conf_dir)
    if not relative.startswith(".."):
        spellings.update({relative, "./" + relative})
    total = 0
    for spelling in sorted(spellings, key=len, reverse=True):
        def replace(match):
            return "%s%s%s/%s%s%s" % (match.group("head"), match.group("quote"), staging,
                                      match.group("glob"), match.group("quote"), match.group("tail"))
        conf_text, found = _include_pattern(spelling).subn(replace, conf_text)
        total += found
    if not total:
        raise LookupError(sites_enabled)
    return conf_text
