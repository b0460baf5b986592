"""Rendering of DPL's nginx vhosts: only validated values get in, and the safe-reload
helpers point a copy of the main configuration at a staging folder."""

from __future__ import annotations

import pytest

from ansible_collections.dpl.platform.plugins.module_utils import nginx, validation
from ansible_collections.dpl.platform.plugins.module_utils.validation import ValidationError

GOOD = dict(domain="shop.example.com", upstream_ipv4="10.210.0.23", upstream_port=3000,
            tls_certificate="/etc/ssl/dpl/shop.example.com.crt",
            tls_certificate_key="/etc/ssl/dpl/shop.example.com.key")

# Domains that would inject nginx directives, or escape a path, if they were placed as is.
HOSTILE_DOMAINS = [
    "shop.example.com;\n    include /etc/shadow",
    "shop.example.com\nserver {",
    "shop.example.com;",
    "shop.example.com}",
    "{shop}.example.com",
    "$host.example.com",
    "shop example.com",
    "shop..example.com",
    "../../etc/passwd",
    "shop.example.com/../x",
    "Shop.example.com",
    "shop",
    "",
]


def render(**changes):
    return nginx.render_vhost(**dict(GOOD, **changes))


def test_vhost_redirects_http_and_proxies_https_with_the_forwarding_headers():
    text = render()
    assert text.startswith(nginx.MARKER + "\n")
    http, https = text.split("server {")[1:]
    assert "    listen 80;\n    listen [::]:80;\n" in http
    assert "    server_name shop.example.com;\n" in http
    assert "    return 301 https://shop.example.com$request_uri;\n" in http
    assert "    listen 443 ssl;\n    listen [::]:443 ssl;\n" in https
    for line in (
        "ssl_certificate /etc/ssl/dpl/shop.example.com.crt;",
        "ssl_certificate_key /etc/ssl/dpl/shop.example.com.key;",
        "client_max_body_size 10m;",
        "proxy_pass http://10.210.0.23:3000;",
        "proxy_http_version 1.1;",
        "proxy_set_header Host $host;",
        "proxy_set_header X-Real-IP $remote_addr;",
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $dpl_connection_upgrade;",
        "proxy_connect_timeout 5s;",
        "proxy_send_timeout 60s;",
        "proxy_read_timeout 60s;",
    ):
        assert "        " + line in https or "    " + line in https, line


def test_sizes_timeouts_and_ipv6_come_from_the_options():
    text = render(client_max_body_size="50M", proxy_connect_timeout=3, proxy_send_timeout="120",
                  proxy_read_timeout=3600, listen_ipv6=False)
    assert "client_max_body_size 50m;" in text
    assert "proxy_connect_timeout 3s;" in text
    assert "proxy_send_timeout 120s;" in text
    assert "proxy_read_timeout 3600s;" in text
    assert "[::]" not in text


def test_rendering_is_deterministic():
    assert render() == render()


@pytest.mark.parametrize("domain", HOSTILE_DOMAINS)
def test_hostile_domains_are_refused(domain):
    with pytest.raises(ValidationError) as caught:
        render(domain=domain)
    assert caught.value.field == "domain"
    assert str(caught.value).startswith(f"domain: {domain!r} is not valid: ")
    with pytest.raises(ValidationError):
        nginx.file_name(domain)


def test_refusal_is_the_validation_layers_own_message():
    with pytest.raises(ValidationError) as caught:
        render(domain="shop.example.com;")
    with pytest.raises(ValidationError) as layer:
        validation.domain("shop.example.com;", "domain")
    assert str(caught.value) == str(layer.value)
    assert str(caught.value).startswith("domain: 'shop.example.com;' is not valid: each label must be 1-63 ")


@pytest.mark.parametrize("changes, field", [
    (dict(upstream_ipv4="10.210.0.23; include /etc/passwd"), "upstream_ipv4"),
    (dict(upstream_ipv4="10.210.0.256"), "upstream_ipv4"),
    (dict(upstream_ipv4="shop.example.com"), "upstream_ipv4"),
    (dict(upstream_port=0), "upstream_port"),
    (dict(upstream_port=65536), "upstream_port"),
    (dict(upstream_port="80;"), "upstream_port"),
    (dict(tls_certificate="relative/cert.pem"), "tls_certificate"),
    (dict(tls_certificate="/etc/ssl/a b.crt"), "tls_certificate"),
    (dict(tls_certificate="/etc/ssl/x.crt;\ninclude /etc/shadow"), "tls_certificate"),
    (dict(tls_certificate="/etc/ssl/../../x.crt"), "tls_certificate"),
    (dict(tls_certificate_key="/etc/ssl/$key"), "tls_certificate_key"),
    (dict(tls_certificate_key="/etc/ssl/dpl/"), "tls_certificate_key"),
    (dict(client_max_body_size="10m;"), "client_max_body_size"),
    (dict(client_max_body_size="1t"), "client_max_body_size"),
    (dict(client_max_body_size="-1"), "client_max_body_size"),
    (dict(client_max_body_size="010m"), "client_max_body_size"),
    (dict(proxy_connect_timeout=0), "proxy_connect_timeout"),
    (dict(proxy_connect_timeout=76), "proxy_connect_timeout"),
    (dict(proxy_read_timeout="60s"), "proxy_read_timeout"),
    (dict(proxy_send_timeout=86401), "proxy_send_timeout"),
    (dict(listen_ipv6="yes"), "listen_ipv6"),
])
def test_other_hostile_values_are_refused_with_their_field(changes, field):
    with pytest.raises(ValidationError) as caught:
        render(**changes)
    assert caught.value.field == field


def test_upstream_must_be_inside_the_network_when_given():
    assert "proxy_pass http://10.210.0.23:3000;" in render(upstream_network="10.210.0.0/24")
    with pytest.raises(ValidationError) as caught:
        render(upstream_ipv4="192.168.1.10", upstream_network="10.210.0.0/24")
    assert str(caught.value) == ("upstream_ipv4: '192.168.1.10' is not valid: must be a host address "
                                 "inside 10.210.0.0/24")


def test_body_size_zero_means_no_limit():
    assert nginx.body_size(0) == "0"
    assert nginx.body_size("512K") == "512k"


def test_file_name_is_the_domain():
    assert nginx.file_name("shop.example.com") == "shop.example.com.conf"


def test_standalone_config_loads_only_the_vhost_and_the_upgrade_map():
    text = nginx.standalone_config("/tmp/x/shop.example.com.conf", "/tmp/x/nginx.pid")
    assert "include /tmp/x/shop.example.com.conf;\n" in text
    assert "pid /tmp/x/nginx.pid;\n" in text
    assert "map $http_upgrade $dpl_connection_upgrade {" in text
    assert text.count("include") == 1


DEBIAN_CONF = """user www-data;
http {
\tinclude /etc/nginx/mime.types;
\tinclude /etc/nginx/conf.d/*.conf;
\tinclude /etc/nginx/sites-enabled/*;
\t# include /etc/nginx/sites-enabled/*;
}
"""


def test_redirect_include_points_the_sites_enabled_include_at_staging():
    text = nginx.redirect_include(DEBIAN_CONF, "/etc/nginx", "/etc/nginx/sites-enabled", "/tmp/stage")
    assert "\tinclude /tmp/stage/*;\n" in text
    assert "\tinclude /etc/nginx/conf.d/*.conf;\n" in text
    # Comments stay as they are.
    assert "\t# include /etc/nginx/sites-enabled/*;\n" in text
    assert text.count("/tmp/stage") == 1


@pytest.mark.parametrize("line, expected", [
    ("include sites-enabled/*;", "include /tmp/stage/*;"),
    ("include ./sites-enabled/*.conf ;", "include /tmp/stage/*.conf ;"),
    ('include "/etc/nginx/sites-enabled/*";', 'include "/tmp/stage/*";'),
    ("  include   '/etc/nginx/sites-enabled/*' ;", "  include   '/tmp/stage/*' ;"),
    ("include /etc/nginx/sites-enabled-old/*;", None),
    ("include /etc/nginx/sites-enabled/*.conf;", "include /tmp/stage/*.conf;"),
])
def test_redirect_include_spellings(line, expected):
    conf = f"http {{\n{line}\n}}\n"
    if expected is None:
        with pytest.raises(LookupError):
            nginx.redirect_include(conf, "/etc/nginx", "/etc/nginx/sites-enabled/", "/tmp/stage")
        return
    assert nginx.redirect_include(conf, "/etc/nginx", "/etc/nginx/sites-enabled/", "/tmp/stage") == \
        f"http {{\n{expected}\n}}\n"


def test_redirect_include_refuses_a_configuration_without_the_folder():
    with pytest.raises(LookupError):
        nginx.redirect_include("http {\ninclude /etc/nginx/conf.d/*.conf;\n}\n", "/etc/nginx",
                               "/etc/nginx/sites-enabled", "/tmp/stage")
    # A folder that merely starts the same is not the folder.
    with pytest.raises(LookupError):
        nginx.redirect_include("http {\ninclude /etc/nginx/sites-enabled-old/*;\n}\n", "/etc/nginx",
                               "/etc/nginx/sites-enabled", "/tmp/stage")


def test_backup_ports_make_an_upstream_the_live_port_first():
    text = render(upstream_port=3001, upstream_backup_ports=[3000])
    upstream = text.split("upstream dpl_shop.example.com {\n", 1)[1].split("}", 1)[0]
    assert upstream == "    server 10.210.0.23:3001;\n    server 10.210.0.23:3000 backup;\n"
    assert "proxy_pass http://dpl_shop.example.com;" in text
    # Without backups the vhost is what it always was: no upstream block.
    assert "upstream" not in render() and "proxy_pass http://10.210.0.23:3000;" in render()


@pytest.mark.parametrize("backups", [[3000], [3001, 3001], [0], [70000], ["3001;\n}"], [True]])
def test_bad_backup_ports_are_refused(backups):
    with pytest.raises(ValidationError, match="upstream_backup_ports"):
        render(upstream_backup_ports=backups)
