"""The one validation layer: every rule, with the values an attacker (or a typo) would send.

Each rule has a table of values it must accept (and what it turns them into) and of values
it must refuse. The hostile values are grouped by what they try: path traversal, shell
metacharacters, newlines and braces that would end a line or a block of an nginx, YAML or
env file, a leading '-' that turns an argument into an option, over-long values and
non-ASCII look-alikes.
"""

from __future__ import annotations

import pytest

from dpl_web.collection import validation

ValidationError = validation.ValidationError

TRAVERSAL = ["..", "../etc/passwd", "a/../../b", "a/..", "/etc/passwd"]
SHELL = ["a;rm -rf /", "$(id)", "`id`", "a|b", "a&b", "a>b", "a<b", "a$HOME", "a'b", 'a"b', "a\\b"]
BREAKOUT = ["a\nb", "a\r\nb", "a\x00b", "{{ 7 * 7 }}", "a}", "a{", "x;\n}\nserver {", "a\n- b: c",
            "a\u2028b", "a\x1b[31m"]
DASHES = ["-rf", "--upload-pack=touch /tmp/pwned", "-"]
NON_ASCII = ["café", "ｅｘａｍｐｌｅ", "\u0430pp", "a\u200bb", "\u202etxt.exe"]


def refused(rule, value, *args, **kwargs):
    with pytest.raises(ValidationError) as caught:
        rule(value, *args, **kwargs)
    return caught.value


# -- the error itself ----------------------------------------------------------------------


def test_error_names_field_value_and_rule():
    error = refused(validation.name, "Bad Name", "project")
    assert error.field == "project"
    assert error.value == "Bad Name"
    assert "lower-case" in error.rule
    assert str(error) == f"project: 'Bad Name' is not valid: {error.rule}"


def test_error_escapes_control_characters_and_cuts_long_values():
    assert "\\n" in str(refused(validation.name, "a\nb"))
    assert "\n" not in str(refused(validation.name, "a\nb"))
    message = str(refused(validation.name, "x" * 500))
    assert len(message) < 200 and "..." in message


def test_error_is_a_value_error():
    assert issubclass(ValidationError, ValueError)


@pytest.mark.parametrize("rule", [
    validation.name, validation.app_name, validation.container_name, validation.domain, validation.repo_url,
    validation.git_ref, validation.relative_path, validation.absolute_path, validation.url_path,
    validation.env_name, validation.command, validation.ipv4, validation.ipv4_interface,
    validation.interface_name, validation.image, validation.token, validation.line, validation.text,
    validation.lxd_endpoint, validation.size, validation.commit,
])
@pytest.mark.parametrize("value", [None, 3.5, ["a"], {"a": 1}, b"bytes"])
def test_every_string_rule_refuses_non_strings(rule, value):
    refused(rule, value)


# -- names ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["a", "shop", "my-shop", "a1", "1a", "x" * 63, "a--b"])
def test_name_accepts_rfc1123_labels(value):
    assert validation.name(value) == value


@pytest.mark.parametrize("value", [
    "", "Shop", "my_shop", "my.shop", "my shop", "-shop", "shop-", "x" * 64, "shop\n", "\nshop",
    *TRAVERSAL, *SHELL, *BREAKOUT, *DASHES, *NON_ASCII,
])
def test_name_refuses(value):
    refused(validation.name, value)


def test_app_name_is_a_name_with_its_own_field():
    assert validation.app_name("web") == "web"
    assert refused(validation.app_name, "Web").field == "app"


@pytest.mark.parametrize("value", ["web1", "c-0001", "a"])
def test_container_name_accepts(value):
    assert validation.container_name(value) == value


@pytest.mark.parametrize("value", ["1web", "0", "localhost", "Web", "web_1", "x" * 64, "web\n", *DASHES, *SHELL])
def test_container_name_refuses(value):
    refused(validation.container_name, value)


def test_names_is_a_list_of_distinct_names():
    assert validation.names(["default", "dpl"]) == ["default", "dpl"]
    refused(validation.names, "default")
    refused(validation.names, ["default", "default"])
    assert refused(validation.names, ["ok", "Bad"]).field == "names[1]"


@pytest.mark.parametrize("value", ["dplbr0", "br-0", "x" * 15])
def test_interface_name_accepts(value):
    assert validation.interface_name(value) == value


@pytest.mark.parametrize("value", ["x" * 16, "br_0", "br0\n", "-br", "br;0", "bré"])
def test_interface_name_refuses(value):
    refused(validation.interface_name, value)


# -- domains -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [
    "example.com", "app.example.com", "a-b.example.co.uk", "xn--caf-dma.example", "1.example.com",
    ("a" * 63 + ".") * 3 + "b" * 61,
])
def test_domain_accepts(value):
    assert validation.domain(value) == value


@pytest.mark.parametrize("value", [
    "", "localhost", "Example.com", "example.com.", ".example.com", "a..b.com", "-a.example.com",
    "a-.example.com", "a_b.example.com", "10.0.0.1", "*.example.com", "a" * 64 + ".com",
    ("a" * 63 + ".") * 3 + "b" * 62, "example.com\n", "example.com;", "example.com { }",
    # A final label a URL parser reads as a number; DPL's own default certificate's name.
    "a.0x1", "1.2.3.4.5", "app.0xff", "default.invalid",
    "ex ample.com", "café.example.com", "ｅｘａｍｐｌｅ.com", "\u0430pple.com", "$(id).example.com",
    "{{x}}.example.com", "example.com/..", *DASHES,
])
def test_domain_refuses(value):
    refused(validation.domain, value)


def test_domain_wildcard_only_when_asked():
    assert validation.domain("*.example.com", wildcard=True) == "*.example.com"
    assert "wildcard" in refused(validation.domain, "*.example.com").rule
    refused(validation.domain, "*.com", wildcard=True)
    refused(validation.domain, "a.*.example.com", wildcard=True)


def test_domains_is_a_list_of_distinct_domains():
    assert validation.domains(["a.example.com", "b.example.com"]) == ["a.example.com", "b.example.com"]
    assert validation.domains([]) == []
    refused(validation.domains, "a.example.com")
    refused(validation.domains, ["a.example.com", "a.example.com"])
    assert refused(validation.domains, ["a.example.com", "bad"]).field == "domains[1]"


# -- git -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [
    "https://github.com/owner/repo.git", "https://git.example.com:8443/group/sub/repo",
    "ssh://git@github.com/owner/repo.git", "ssh://git@[::1]:2222/repo", "git://example.com/repo.git",
    "file:///srv/dpl/git/repo.git", "git@github.com:owner/repo.git", "deploy@localhost:repo",
    "ssh://git@host.example/~user/repo.git",
])
def test_repo_url_accepts(value):
    assert validation.repo_url(value) == value


@pytest.mark.parametrize("value", [
    "", "http://github.com/owner/repo.git", "ftp://example.com/repo", "github.com/owner/repo",
    "https://user:token@github.com/owner/repo.git", "https://token@github.com/owner/repo.git",
    "file://host/srv/repo", "file:///srv/../etc/passwd", "https://github.com/owner/../../x",
    "ssh://-oProxyCommand=touch%20x/repo", "ext::sh -c touch% /tmp/pwned", "ext::sh",
    "host:repo", "https://github.com/owner/repo.git\n", "https://github.com/owner/repo .git",
    "https://github.com/$(id)", "https://github.com/`id`", "https://github.com/a;b", "https://github.com/{{x}}",
    "https://github.com/a|b", "https://github.com/a'b", "https://gïthub.com/x", "https://github.com/x\x00",
    *DASHES,
    # git's remote-helper form runs a helper program; an scp-like path that is an option.
    "a.b::foo", "localhost::x", "foo.bar:x::y", "host.example:-x", "git@host.example:--upload-pack=x",
    # Local repositories outside DPL's git folder: the container's files, another project's checkout.
    "file:///etc", "file:///root/deploy/other-project/app", "file:///srv/dpl/git/../../../etc",
    "file:///srv/dpl/git/%2e%2e/%2e%2e/etc", "file:///srv/dpl/gitx/repo.git",
    # Ports a URL cannot have; dot segments a server decodes.
    "https://github.com:65536/x.git", "ssh://git@host.example:99999/x", "git://host.example:0/x",
    "https://github.com/owner/%2e%2e/x", "https://github.com/owner/%2E./x", "https://github.com/.%2e/x",
])
def test_repo_url_refuses(value):
    refused(validation.repo_url, value)


def test_repo_url_refuses_credentials_with_advice():
    assert "deploy key" in refused(validation.repo_url, "https://u:p@example.com/r.git").rule


@pytest.mark.parametrize("value", [
    "main", "v1.2.3", "feature/login", "release-2026.01", "0123abcd", "a@b", "HEAD", "x" * 255,
])
def test_git_ref_accepts(value):
    assert validation.git_ref(value) == value


@pytest.mark.parametrize("value", [
    "", "-f", "--upload-pack=x", "a..b", "a b", "a~1", "a^", "a:b", "a?", "a*", "a[", "a\\b", "a@{1}",
    "@", "/main", "main/", "a//b", "main.", ".hidden", "a/.b", "main.lock", "a.lock/b", "main\n", "ma\x00in",
    "$(id)", "`id`", "a;b", "a|b", "a&b", "{{ x }}", "a'b", 'a"b', "a<b", "ré", "x" * 256,
])
def test_git_ref_refuses(value):
    refused(validation.git_ref, value)


@pytest.mark.parametrize("value", ["abcd", "0123456789abcdef0123456789abcdef01234567", "f" * 64])
def test_commit_accepts(value):
    assert validation.commit(value) == value


@pytest.mark.parametrize("value", ["abc", "ABCDEF12", "abcdefg", "f" * 65, "abcd\n", "-abcd", "main"])
def test_commit_refuses(value):
    refused(validation.commit, value)


# -- numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [(1, 1), (3000, 3000), (65535, 65535), ("8080", 8080)])
def test_port_accepts(value, expected):
    assert validation.port(value) == expected


@pytest.mark.parametrize("value", [
    0, 65536, -1, True, False, 3.0, "", " 80", "80\n", "0x50", "+80", "1_000", "٣٠٠٠", "８０", "80;", None,
])
def test_port_refuses(value):
    refused(validation.port, value)


def test_an_app_port_leaves_room_for_the_second_slot():
    assert validation.app_ports(3000) == (3000, 3001)
    assert validation.app_port(65534) == 65534
    with pytest.raises(validation.ValidationError, match="at most 65534: the app also uses the next port"):
        validation.app_port(65535)
    refused(validation.app_port, "80;")


def test_count_bounds_and_strings():
    assert validation.count(5, "keep", 1, 100) == 5
    assert validation.count("7", "keep", 1, 100) == 7
    for value in (0, 101, "5\n", "٥", True, 2.0, "-1", None):
        refused(validation.count, value, "keep", 1, 100)
    assert refused(validation.count, 0, "keep_releases", 1, 100).rule == "must be a whole number from 1 to 100"


@pytest.mark.parametrize(("value", "expected"), [("2", "2"), (4, "4"), ("512", "512"), ("0-1", "0-1"),
                                                 ("0,2", "0,2"), ("0-3,8", "0-3,8")])
def test_cpu_limit_accepts(value, expected):
    assert validation.cpu_limit(value) == expected


@pytest.mark.parametrize("value", ["0", "513", "2\n", "two", "-1", "1.5", "0-", ",1", "1;reboot", True, "٢"])
def test_cpu_limit_refuses(value):
    refused(validation.cpu_limit, value)


@pytest.mark.parametrize("value", ["512MB", "2GiB", "1B", "20GB", "1TiB", "64kB"])
def test_size_accepts(value):
    assert validation.size(value) == value


@pytest.mark.parametrize("value", ["0GB", "1 GB", "1gb", "-1GB", "1XB", "1GB\n", "GB", "1.5GB", "99999999999999GB"])
def test_size_refuses(value):
    refused(validation.size, value)


# -- paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["deploy.sh", "scripts/deploy.sh", "build/index.js", "a/b.c/d_e+f@g=h,i", "."])
def test_relative_path_accepts(value):
    assert validation.relative_path(value) == value


@pytest.mark.parametrize("value", [
    "", "a b", "~/x", "a/*", "é.sh", *TRAVERSAL, *SHELL, *BREAKOUT, *DASHES, "x" * 1025,
])
def test_relative_path_refuses(value):
    refused(validation.relative_path, value)


@pytest.mark.parametrize("value", ["/etc/nginx/sites-available", "/root/.config/lxc/client.crt", "/"])
def test_absolute_path_accepts(value):
    assert validation.absolute_path(value) == value


@pytest.mark.parametrize("value", [
    "", "relative/path", "/a/../b", "/..", "/a b", "/a;b", "/$(id)", "/a\nb", "/a\x00b", "/é", "/{{x}}", "-x",
])
def test_absolute_path_refuses(value):
    refused(validation.absolute_path, value)


@pytest.mark.parametrize("value", ["/", "/healthz", "/api/health?full=1&x=2", "/a-b_c.d~e/%20"])
def test_url_path_accepts(value):
    assert validation.url_path(value) == value


@pytest.mark.parametrize("value", [
    "", "healthz", "/a b", "/a\nb", "/a\r\n", "/{{x}}", "/a}", "/a;b", "/$x", "/a\\b", "/a'b", '/a"b', "/a<b",
    "/a|b", "/a#b", "/../etc/passwd", "/a/../b", "/é", "/\x00", "-/x",
])
def test_url_path_refuses(value):
    refused(validation.url_path, value)


# -- environment ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["NODE_ENV", "_X", "a1", "X" * 128])
def test_env_name_accepts(value):
    assert validation.env_name(value) == value


@pytest.mark.parametrize("value", ["", "1A", "A-B", "A B", "A=B", "A\n", "É", "X" * 129, "$A", "A;B", *DASHES])
def test_env_name_refuses(value):
    refused(validation.env_name, value)


@pytest.mark.parametrize(("value", "expected"), [
    ("production", "production"), ("p@$$w0rd'\"`{{x}};|&", "p@$$w0rd'\"`{{x}};|&"), ("", ""), (3000, "3000"),
    ("café ✓", "café ✓"), ("-x", "-x"),
])
def test_env_value_accepts_any_one_line_text(value, expected):
    # Quotes, '$' and braces are data here: the writer quotes, the inventory marks unsafe.
    assert validation.env_value(value) == expected


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\x00b", "x" * 32769, None, True, ["a"]])
def test_env_value_refuses(value):
    refused(validation.env_value, value)


def test_env_mapping():
    assert validation.env({"A": "1", "B": 2}) == {"A": "1", "B": "2"}
    refused(validation.env, [("A", "1")])
    assert refused(validation.env, {"A-B": "1"}).field == "env name"
    assert refused(validation.env, {"A": "x\ny"}).field == "env[A]"


# -- commands and text ---------------------------------------------------------------------


@pytest.mark.parametrize("value", ["npm start", "node server.js | tee -a log", "NODE_ENV=production npm run build",
                                   "./deploy.sh", "make\tinstall", "echo {{x}} $HOME"])
def test_command_accepts_one_line_of_shell(value):
    # A command is shell code by design: it runs as the app, inside its container.
    assert validation.command(value) == value


@pytest.mark.parametrize("value", ["", "   ", "a\nb", "a\r\nb", "a\x00b", "a\x1b[2J", "-rf", "  --x", "x" * 4097])
def test_command_refuses(value):
    refused(validation.command, value)


@pytest.mark.parametrize("value", ["Running", "Stopped", "absent", "not-found", "v1.2_3"])
def test_token_accepts(value):
    assert validation.token(value) == value


@pytest.mark.parametrize("value", ["", "a b", "a\n", "-x", "{{x}}", "a;b", "é", "x" * 65])
def test_token_refuses(value):
    refused(validation.token, value)


def test_line_is_one_line_of_text():
    assert validation.line("admin@example.com (web)") == "admin@example.com (web)"
    for value in ("a\nb", "a\x00", "x" * 201):
        refused(validation.line, value)


def test_text_allows_lines_and_tabs_and_normalises_crlf():
    assert validation.text("line 1\nline\t2 {{ x }} é") == "line 1\nline\t2 {{ x }} é"
    assert validation.text("a\r\nb") == "a\nb"
    for value in ("a\x00b", "a\x1b[31m", "a\rb", "x" * 4001):
        refused(validation.text, value)


def test_output_keeps_any_text_but_nul_and_its_end():
    assert validation.output("\x1b[31mred\r\n\x00x") == "\x1b[31mred\r\nx"
    assert validation.output("abcdef", max_length=3) == "def"
    refused(validation.output, None)


def test_choice_lists_the_choices():
    assert validation.choice("failed", "status", ("successful", "failed")) == "failed"
    assert refused(validation.choice, "done", "status", ("successful", "failed")).rule == \
        "must be one of successful, failed"


# -- addresses -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["10.210.0.10", "203.0.113.7", "0.0.0.0"])
def test_ipv4_accepts(value):
    assert validation.ipv4(value) == value


@pytest.mark.parametrize("value", [
    "", "10.0.0.256", "10.0.0.1\n", " 10.0.0.1", "010.0.0.1", "10.0.0.1/24", "::1", "10.0.0", "١٠.0.0.1",
    "10.0.0.1;id", "localhost",
])
def test_ipv4_refuses(value):
    refused(validation.ipv4, value)


def test_ipv4_inside_a_network():
    assert validation.ipv4("10.210.0.10", network="10.210.0.1/24") == "10.210.0.10"
    for value in ("10.211.0.10", "10.210.0.0", "10.210.0.255"):
        assert "inside 10.210.0.0/24" in refused(validation.ipv4, value, network="10.210.0.1/24").rule


@pytest.mark.parametrize("value", ["10.210.0.1/24", "192.168.5.1/16", "10.0.0.1/30", "10.0.0.1/8"])
def test_ipv4_interface_accepts(value):
    assert validation.ipv4_interface(value) == value


@pytest.mark.parametrize("value", [
    "10.210.0.1", "10.210.0.0/24", "10.210.0.255/24", "10.210.0.1/31", "10.210.0.1/7", "10.210.0.1/24\n",
    "10.210.0.1/٢٤", "10.210.0.1/024", "10.210.0.1/", "/24", "10.210.0.1/24;x",
])
def test_ipv4_interface_refuses(value):
    refused(validation.ipv4_interface, value)


@pytest.mark.parametrize(("value", "expected"), [
    ("unix:", "unix:"), ("unix:/var/snap/lxd/common/lxd/unix.socket", "unix:/var/snap/lxd/common/lxd/unix.socket"),
    ("https://lxd.example.com:8443", "https://lxd.example.com:8443"), ("https://10.0.0.2:8443/", "https://10.0.0.2:8443"),
    ("https://[2001:db8::1]:8443", "https://[2001:db8::1]:8443"),
])
def test_lxd_endpoint_accepts(value, expected):
    assert validation.lxd_endpoint(value) == expected


@pytest.mark.parametrize("value", [
    "", "unix", "http://lxd.example.com:8443", "https://lxd.example.com:99999", "https://lxd.example.com/1.0",
    "https://-oProxy=x", "unix:/a/../b", "unix:/a;b", "unix:/$(id)", "unix:\n", "https://h\n", "https://h os",
    "https://user@h", "https://lxd.exämple.com",
])
def test_lxd_endpoint_refuses(value):
    refused(validation.lxd_endpoint, value)


# -- images --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["dpl-base", "debian/12", "ubuntu/24.04/cloud", "a1b2c3d4e5f6"])
def test_image_accepts(value):
    assert validation.image(value) == value


@pytest.mark.parametrize("value", ["", "../x", "a/../b", "a//b", "-x", "a b", "a;b", "a\n", "é", "{{x}}", "x" * 256])
def test_image_refuses(value):
    refused(validation.image, value)


@pytest.mark.parametrize("value", ["1.2.3.a", "a.b0x1", "a.x0"])
def test_domain_accepts_final_labels_that_are_not_numbers(value):
    assert validation.domain(value) == value


def test_the_default_certificates_name_only_for_the_module_that_makes_it():
    assert "DPL's own default certificate" in refused(validation.domain, "default.invalid").rule
    assert validation.domain("default.invalid", default_certificate=True) == "default.invalid"


LINE_BREAKERS = ["a\x0bb", "a\x0cb", "a\x1b[31mb", "a\x85b", "a\u2028b", "a\u2029b", "a\ud800b", "a\udfffb",
                 "a\x7fb", "a\x9bb", "a\nb", "a\rb", "a\x00b"]


@pytest.mark.parametrize("value", LINE_BREAKERS)
def test_env_values_and_commands_refuse_what_ends_a_line_or_drives_a_terminal(value):
    refused(validation.env_value, value)
    refused(validation.command, value)


def test_env_values_and_commands_keep_tabs_and_ordinary_unicode():
    assert validation.env_value("a\tb ünïcode €") == "a\tb ünïcode €"
    assert validation.command("echo\t'ünïcode'") == "echo\t'ünïcode'"


def test_the_registry_and_the_modules_keep_within_the_same_bound():
    from ansible_collections.dpl.platform.plugins.module_utils import app_pipeline
    from dpl_web.registry import APP_FIELDS

    for field in ("keep_releases", "keep_backups"):
        assert APP_FIELDS[field].check(validation.KEEP_MAX, field) == validation.KEEP_MAX
        refused(APP_FIELDS[field].check, validation.KEEP_MAX + 1, field)
        params = dict(project="p", app="a", port=3000, start_command="npm start", env={}, secret_env={},
                      health_path="/", keep_releases=5, keep_backups=5, health_timeout=30, lock_timeout=1,
                      script_timeout=1, git_timeout=1)
        params[field] = validation.KEEP_MAX + 1
        with pytest.raises(validation.ValidationError, match=field):
            app_pipeline.validate_params(params)
