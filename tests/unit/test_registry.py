"""The registry: entities, their rules, secrets, jobs, migrations and concurrent writers.

Every test uses its own registry file under tmp_path (and DPL_REGISTRY points there too, so
a forgotten path can never reach the user's real registry).
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import stat

import pytest

from dpl_web import registry
from dpl_web.collection import validation
from dpl_web.registry import Conflict, NotFound, Registry, RegistryError, schema

ValidationError = validation.ValidationError

V1_SQL = "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
REPO = "https://git.example.com/shop/web.git"


@pytest.fixture(autouse=True)
def _default_registry_elsewhere(tmp_path, monkeypatch):
    """$DPL_REGISTRY names another file than ``path``: a test that opens the default one sees it."""
    monkeypatch.setenv("DPL_REGISTRY", str(tmp_path / "default-registry.sqlite3"))


@pytest.fixture
def path(registry_path):
    return registry_path


def tables(conn) -> set[str]:
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def row_count(conn, table: str) -> int:
    return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


# -- the file ------------------------------------------------------------------------------


def test_open_creates_a_private_wal_registry_at_the_latest_version(path):
    with Registry.open(path) as reg:
        assert registry.schema_version(reg.conn) == registry.SCHEMA_VERSION
        assert reg.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert reg.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert reg.conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 10000
        assert {"host", "container", "project", "app", "app_domain", "app_env", "job"} <= tables(reg.conn)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_open_defaults_to_dpl_registry(tmp_path):
    with Registry.open() as reg:
        assert reg.path == tmp_path / "default-registry.sqlite3"
    assert (tmp_path / "default-registry.sqlite3").exists()


def test_open_without_create_refuses_a_missing_file_and_says_what_to_do(path):
    with pytest.raises(RegistryError, match=r"does not exist") as refused:
        Registry.open(path, create=False)
    assert "initialise it" in refused.value.hint and "DPL_REGISTRY" in refused.value.hint
    assert not path.exists()


def test_open_refuses_a_file_that_is_not_a_registry(path):
    path.write_text("not a database, just text " * 100)
    path.chmod(0o644)
    with pytest.raises(RegistryError, match="is not a usable DPL registry"):
        Registry.open(path)
    # A file that is not ours is left alone, mode included.
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_open_refuses_a_newer_schema(path):
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(RegistryError, match="newer than this DPL"):
        Registry.open(path)


def test_migration_from_v1_keeps_data_and_tightens_the_mode(path):
    # A registry as the first DPL made it: schema v1, mode 0644, a row in meta.
    conn = sqlite3.connect(path)
    conn.execute(V1_SQL)
    conn.execute("INSERT INTO meta (key, value) VALUES ('created_by', 'dpl 0.1')")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    path.chmod(0o644)

    with Registry.open(path) as reg:
        assert registry.schema_version(reg.conn) == registry.SCHEMA_VERSION
        assert reg.conn.execute("SELECT value FROM meta WHERE key = 'created_by'").fetchone()[0] == "dpl 0.1"
        reg.add_host("local")
        reg.add_container("web1")
        assert reg.get_container("web1")["ipv4"] == "10.210.0.10"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_migration_from_an_empty_file(path):
    path.touch()
    with Registry.open(path) as reg:
        assert registry.schema_version(reg.conn) == registry.SCHEMA_VERSION


def test_migrating_twice_changes_nothing(path):
    Registry.open(path).close()
    with Registry.open(path) as reg:
        assert registry.migrate(reg.conn) == registry.SCHEMA_VERSION


def test_a_failed_migration_leaves_the_previous_version(path, monkeypatch):
    conn = sqlite3.connect(path)
    conn.execute(V1_SQL)
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS[:1], "CREATE TABLE host (id);\nBROKEN SQL;"])
    monkeypatch.setattr(schema, "SCHEMA_VERSION", 2)
    with pytest.raises(RegistryError):
        Registry.open(path)
    conn = sqlite3.connect(path)
    assert registry.schema_version(conn) == 1
    assert "host" not in tables(conn)
    conn.close()


def test_statements_keeps_trigger_bodies_whole():
    script = "CREATE TABLE t (a); CREATE TRIGGER x AFTER INSERT ON t BEGIN SELECT 1; SELECT 2; END; SELECT 3;"
    assert [s.strip() for s in schema._statements(script)] == [
        "CREATE TABLE t (a);", "CREATE TRIGGER x AFTER INSERT ON t BEGIN SELECT 1; SELECT 2; END;", "SELECT 3;"]


def test_connect_readonly_still_works(path):
    Registry.open(path).close()
    conn = registry.connect_readonly(path)
    assert registry.schema_version(conn) == registry.SCHEMA_VERSION
    conn.close()


# -- hosts ---------------------------------------------------------------------------------


def test_host_defaults(reg):
    host = reg.get_host("local")
    assert host["endpoint"] == "unix:"
    assert host["nginx_sites_dir"] == "/etc/nginx/sites-available"
    assert (host["bridge"], host["bridge_ipv4"]) == ("dplbr0", "10.210.0.1/24")
    assert host["public_ipv4"] is None


def test_https_host_needs_its_certificates(reg):
    with pytest.raises(ValidationError, match="client_cert, client_key and server_cert"):
        reg.add_host("remote", endpoint="https://lxd.example.com:8443")
    host = reg.add_host("remote", endpoint="https://lxd.example.com:8443", client_cert="/etc/dpl/client.crt",
                        client_key="/etc/dpl/client.key", server_cert="/etc/dpl/remote.crt")
    assert host["server_cert"] == "/etc/dpl/remote.crt"
    with pytest.raises(ValidationError):
        reg.update_host("remote", client_key=None)


def test_host_add_twice_and_unknown_fields(reg):
    with pytest.raises(Conflict, match="already exists"):
        reg.add_host("local")
    with pytest.raises(ValidationError, match="not a field of a host"):
        reg.add_host("other", colour="blue")


def test_update_host_writes_only_what_differs(reg):
    before = reg.total_changes
    reg.update_host("local", bridge="dplbr0")
    assert reg.total_changes == before
    assert reg.update_host("local", public_ipv4="203.0.113.7")["public_ipv4"] == "203.0.113.7"
    assert reg.total_changes == before + 1
    assert reg.update_host("local", public_ipv4=None)["public_ipv4"] is None


def test_bridge_change_must_keep_every_container_inside(reg):
    reg.add_container("web1", ipv4="10.210.0.200")
    with pytest.raises(Conflict, match=r"web1 \(10.210.0.200\)"):
        reg.update_host("local", bridge_ipv4="10.210.0.1/25")
    assert reg.update_host("local", bridge_ipv4="10.210.0.1/16")["bridge_ipv4"] == "10.210.0.1/16"


def test_ensure_host_is_idempotent(reg):
    _host, changed = reg.ensure_host("local")
    assert changed is False
    _host, changed = reg.ensure_host("local", public_ipv4="203.0.113.7")
    assert changed is True
    _host, changed = reg.ensure_host("local", public_ipv4="203.0.113.7")
    assert changed is False
    host, changed = reg.ensure_host("second", bridge="dplbr1")
    assert changed is True and host["bridge"] == "dplbr1"


def test_remove_host_with_containers_needs_cascade(reg):
    reg.add_container("web1")
    reg.add_app("shop", "web", REPO, container="web1")
    with pytest.raises(Conflict, match="still has containers: web1"):
        reg.remove_host("local")
    assert reg.remove_host("local", cascade=True) == {
        "hosts": ["local"], "containers": ["web1"], "projects": ["shop"], "apps": ["shop/web"]}
    assert reg.list_hosts() == [] and reg.list_containers() == [] and reg.list_apps() == []


# -- containers ----------------------------------------------------------------------------


def test_containers_get_the_lowest_free_address_from_dot_ten(reg):
    assert reg.add_container("a")["ipv4"] == "10.210.0.10"
    assert reg.add_container("b", ipv4="10.210.0.11")["ipv4"] == "10.210.0.11"
    assert reg.add_container("c")["ipv4"] == "10.210.0.12"
    reg.remove_container("a")
    assert reg.add_container("d")["ipv4"] == "10.210.0.10"
    assert reg.add_container("e", ipv4="10.210.0.5")["ipv4"] == "10.210.0.5"


def test_container_addresses_are_unique_per_host_and_inside_its_bridge(reg):
    reg.add_container("a")
    with pytest.raises(Conflict, match="already the address of container 'a'"):
        reg.add_container("b", ipv4="10.210.0.10")
    with pytest.raises(ValidationError, match="inside 10.210.0.0/24"):
        reg.add_container("b", ipv4="10.211.0.10")
    with pytest.raises(ValidationError, match="host's own address"):
        reg.add_container("b", ipv4="10.210.0.1")
    with pytest.raises(ValidationError):
        reg.add_container("b", ipv4="10.210.0.255")
    # Another host has its own bridge: the same address is fine there.
    reg.add_host("second")
    assert reg.add_container("b", "second", ipv4="10.210.0.10")["host"] == "second"


def test_a_full_bridge_says_so(reg):
    reg.update_host("local", bridge_ipv4="10.210.0.1/28")  # .0-.15: .10-.14 are for containers
    for name in "abcde":
        reg.add_container(name)
    with pytest.raises(Conflict, match="no free address"):
        reg.add_container("f")


def test_container_fields(reg):
    container = reg.add_container("web1", image="debian/12", profiles=["default", "dpl"], cpu=2, memory="1GiB",
                                  disk="10GiB", notes="the shop")
    assert container["limits"] == {"cpu": "2", "memory": "1GiB", "disk": "10GiB"}
    assert container["profiles"] == ["default", "dpl"]
    assert container["status"] == "unknown"
    container = reg.update_container("web1", memory=None, profiles=["default"])
    assert container["limits"]["memory"] is None and container["profiles"] == ["default"]
    with pytest.raises(ValidationError):
        reg.update_container("web1", ipv4=None)
    with pytest.raises(ValidationError, match="not a field of a container"):
        reg.update_container("web1", host="second")


def test_container_name_rules_and_missing_host(reg):
    with pytest.raises(ValidationError):
        reg.add_container("1web")
    with pytest.raises(ValidationError):
        reg.add_container("localhost")
    with pytest.raises(NotFound, match="host 'nope' does not exist"):
        reg.add_container("web1", "nope")
    with pytest.raises(Conflict):
        reg.add_container("web1")
        reg.add_container("web1")


def test_set_container_status(reg):
    reg.add_container("web1")
    container = reg.set_container_status("web1", "Running")
    assert container["status"] == "Running" and container["status_at"]
    assert reg.set_container_status("web1", "Running", ipv4="10.210.0.20")["ipv4"] == "10.210.0.20"
    with pytest.raises(ValidationError):
        reg.set_container_status("web1", "Running\nEvil: yes")
    with pytest.raises(NotFound):
        reg.set_container_status("nope", "Running")


def test_remove_container_with_projects_needs_cascade(reg):
    reg.add_container("web1")
    reg.add_project("shop", "web1")
    reg.add_app("shop", "web", REPO)
    with pytest.raises(Conflict, match="still has projects: shop"):
        reg.remove_container("web1")
    assert reg.get_container("web1")["projects"] == ["shop"]
    assert reg.remove_container("web1", cascade=True) == {
        "containers": ["web1"], "projects": ["shop"], "apps": ["shop/web"]}
    assert row_count(reg.conn, "app_domain") == 0 and row_count(reg.conn, "app_env") == 0


# -- projects ------------------------------------------------------------------------------


def test_projects_share_containers_and_have_global_names(reg):
    reg.add_container("web1")
    reg.add_container("web2")
    reg.add_project("shop", "web1")
    reg.add_project("blog", "web1")
    assert [p["name"] for p in reg.list_projects(container="web1")] == ["blog", "shop"]
    with pytest.raises(Conflict, match="unique across containers"):
        reg.add_project("shop", "web2")
    with pytest.raises(NotFound):
        reg.add_project("wiki", "nope")
    with pytest.raises(NotFound):
        reg.list_projects(container="nope")


def test_remove_project_with_apps_needs_cascade(reg):
    reg.add_container("web1")
    reg.add_app("shop", "web", REPO, container="web1")
    with pytest.raises(Conflict, match="still has apps: web"):
        reg.remove_project("shop")
    assert reg.remove_project("shop", cascade=True) == {"projects": ["shop"], "apps": ["shop/web"]}


def test_moving_a_project_checks_ports(reg):
    reg.add_container("web1")
    reg.add_container("web2")
    reg.add_app("shop", "web", REPO, container="web1", port=3000)
    reg.add_app("blog", "site", REPO, container="web2", port=3000)
    with pytest.raises(Conflict, match="overlaps ports 3000-3001 of app blog/site"):
        reg.update_project("shop", container="web2")
    reg.update_app("blog", "site", port=4000)
    assert reg.update_project("shop", container="web2")["container"] == "web2"
    assert reg.get_app("shop", "web")["container"] == "web2"


# -- apps ----------------------------------------------------------------------------------


def test_app_defaults(reg):
    reg.add_container("web1")
    app = reg.add_app("shop", "web", REPO, container="web1")
    assert {key: app[key] for key in ("ref", "deploy_script", "start_command", "port", "domains", "env",
                                      "secret_env", "health_path", "keep_releases", "keep_backups")} == {
        "ref": None, "deploy_script": None, "start_command": "npm start", "port": 3000, "domains": [], "env": {},
        "secret_env": [], "health_path": "/", "keep_releases": 5, "keep_backups": 5}
    assert (app["project"], app["container"], app["host"]) == ("shop", "web1", "local")


def test_add_app_needs_its_project_or_a_container(reg):
    reg.add_container("web1")
    with pytest.raises(NotFound, match="project 'shop' does not exist") as refused:
        reg.add_app("shop", "web", REPO)
    assert refused.value.remedy == "give_container" and "name a container" in refused.value.hint
    reg.add_app("shop", "web", REPO, container="web1")
    reg.add_container("web2")
    with pytest.raises(Conflict, match="is in container 'web1', not 'web2'"):
        reg.add_app("shop", "api", REPO, container="web2")
    with pytest.raises(Conflict, match="already exists"):
        reg.add_app("shop", "web", REPO)


def test_ports_are_unique_per_container(reg):
    reg.add_container("web1")
    reg.add_container("web2")
    reg.add_app("shop", "web", REPO, container="web1")
    assert reg.get_app("shop", "web")["ports"] == [3000, 3001]
    reg.add_project("blog", "web1")
    with pytest.raises(Conflict, match=r"port 3000 \(the app uses ports 3000-3001\) overlaps ports 3000-3001 of "
                                       r"app shop/web in container 'web1'"):
        reg.add_app("blog", "site", REPO)
    # Each app also owns the next port (the second slot of deploys without downtime).
    for taken in (2999, 3001):
        with pytest.raises(Conflict, match="overlaps ports 3000-3001 of app shop/web"):
            reg.add_app("blog", "site", REPO, port=taken)
    with pytest.raises(validation.ValidationError, match="at most 65534"):
        reg.add_app("blog", "site", REPO, port=65535)
    reg.add_app("blog", "site", REPO, port=3002)
    with pytest.raises(Conflict):
        reg.update_app("blog", "site", port=3001)
    # Another container is another network namespace.
    reg.add_app("wiki", "site", REPO, container="web2", port=3000)
    # Keeping one's own port is no conflict.
    reg.update_app("shop", "web", port=3000, ref="v2")


def test_domains_are_unique_globally_and_ordered(reg):
    reg.add_container("web1")
    reg.add_container("web2")
    app = reg.add_app("shop", "web", REPO, container="web1", domains=["www.example.com", "example.com"])
    assert app["domains"] == ["www.example.com", "example.com"]
    with pytest.raises(Conflict, match="domain example.com is already served by app shop/web"):
        reg.add_app("blog", "site", REPO, container="web2", domains=["blog.example.com", "example.com"])
    assert reg.list_projects(container="web2") == []  # the project made for the app was rolled back too
    app = reg.update_app("shop", "web", domains=["example.com"])
    assert app["domains"] == ["example.com"]
    reg.add_app("blog", "site", REPO, container="web2", domains=["www.example.com"])


def test_nothing_is_written_when_a_value_is_refused(reg):
    reg.add_container("web1")
    reg.add_app("shop", "web", REPO, container="web1", domains=["shop.example.com"])
    before = reg.total_changes
    hostile = [
        {"ref": "main; rm -rf /"}, {"domains": ["ok.example.com", "evil.example.com;\n}"]},
        {"repo": "--upload-pack=touch /tmp/pwned"}, {"health_path": "/{{ lookup('pipe', 'id') }}"},
        {"start_command": "npm start\nrm -rf /"}, {"port": 70000}, {"keep_releases": 0},
        {"ref": "v2", "port": "x"}, {"env": {"A": "1", "B-C": "2"}}, {"deploy_script": "-x"},
    ]
    for change in hostile:
        with pytest.raises(ValidationError):
            reg.update_app("shop", "web", **change)
    with pytest.raises(ValidationError):
        reg.add_app("shop", "api", REPO, port=3001, domains=["api.example.com", "../x"])
    assert reg.total_changes == before
    app = reg.get_app("shop", "web")
    assert app["ref"] is None and app["domains"] == ["shop.example.com"] and app["port"] == 3000


def test_env_and_secrets(reg):
    reg.add_container("web1")
    app = reg.add_app("shop", "web", REPO, container="web1", env={"NODE_ENV": "production", "PORT": 3000},
                      secret_env={"DB_PASSWORD": "hunter2", "API_KEY": "{{ lookup('pipe', 'id') }}"})
    assert app["env"] == {"NODE_ENV": "production", "PORT": "3000"}
    assert app["secret_env"] == ["API_KEY", "DB_PASSWORD"]
    assert "hunter2" not in repr(app) and "hunter2" not in repr(reg.list_apps()) and "hunter2" not in repr(
        reg.inventory())
    assert reg.app_secrets("shop", "web") == {"API_KEY": "{{ lookup('pipe', 'id') }}", "DB_PASSWORD": "hunter2"}
    assert reg.get_secret("shop", "web", "DB_PASSWORD") == "hunter2"
    with pytest.raises(NotFound, match="secret variable 'NOPE'") as refused:
        reg.get_secret("shop", "web", "NOPE")
    assert "has API_KEY, DB_PASSWORD" in refused.value.hint
    with pytest.raises(NotFound):
        reg.get_secret("shop", "web", "NODE_ENV")  # plain variables are in the inventory instead

    # Re-classify, change, unset.
    app = reg.update_app("shop", "web", env={"API_KEY": "public"}, secret_env={"NODE_ENV": "xyz1"},
                         unset_env=["PORT"])
    assert app["env"] == {"API_KEY": "public"} and app["secret_env"] == ["DB_PASSWORD", "NODE_ENV"]
    before = reg.total_changes
    reg.update_app("shop", "web", secret_env={"DB_PASSWORD": "hunter2"}, unset_env=["NOT_THERE"])
    assert reg.total_changes == before  # same value: nothing written
    reg.update_app("shop", "web", secret_env={"DB_PASSWORD": "hunter3"})
    assert reg.total_changes > before
    with pytest.raises(ValidationError):
        reg.update_app("shop", "web", env={"A": "1"}, secret_env={"A": "2222"})
    with pytest.raises(ValidationError):
        reg.update_app("shop", "web", env={"A": "1"}, unset_env=["A"])


def test_a_refused_secret_is_not_repeated_in_the_error(reg):
    reg.add_container("web1")
    with pytest.raises(ValidationError) as caught:
        reg.add_app("shop", "web", REPO, container="web1", secret_env={"DB_PASSWORD": "hunter2\nmore"})
    assert "hunter2" not in str(caught.value) and caught.value.value == registry.SECRET_MASK
    with pytest.raises(ValidationError) as caught:
        registry.app_request({"name": "web", "project": "shop", "repo": REPO,
                              "env": {"PW": {"value": "hunter2", "secret": True, "extra": 1}}})
    assert "hunter2" not in str(caught.value)


def test_list_apps_filters(reg):
    reg.add_container("web1")
    reg.add_container("web2")
    reg.add_app("shop", "web", REPO, container="web1")
    reg.add_app("shop", "api", REPO, port=3002)
    reg.add_app("blog", "site", REPO, container="web2")
    assert [(a["project"], a["name"]) for a in reg.list_apps()] == [("blog", "site"), ("shop", "api"), ("shop", "web")]
    assert [a["name"] for a in reg.list_apps(project="shop")] == ["api", "web"]
    assert [a["name"] for a in reg.list_apps(container="web2")] == ["site"]
    assert reg.list_apps(project="shop", container="web2") == []
    with pytest.raises(NotFound):
        reg.list_apps(project="nope")
    with pytest.raises(NotFound, match="app 'shop/nope'"):
        reg.get_app("shop", "nope")
    with pytest.raises(NotFound, match="project 'nope'"):
        reg.get_app("nope", "web")


def test_remove_app(reg):
    reg.add_container("web1")
    reg.add_app("shop", "web", REPO, container="web1", domains=["shop.example.com"], secret_env={"A": "bbbb"})
    assert reg.remove_app("shop", "web") == {"apps": ["shop/web"]}
    assert row_count(reg.conn, "app_domain") == 0 and row_count(reg.conn, "app_env") == 0
    with pytest.raises(NotFound):
        reg.remove_app("shop", "web")


def test_app_request_takes_the_seed_shape():
    assert registry.app_request({"name": "web", "project": "shop", "repo": REPO}) == {
        "name": "web", "project": "shop", "repo": REPO}
    request = registry.app_request({
        "name": "web", "project": "shop", "repo": REPO, "ref": "v1", "port": "4000", "domain": "shop.example.com",
        "start": "node server.js", "deploy_script": "scripts/deploy.sh",
        "env": {"NODE_ENV": "production", "PW": {"value": "x", "secret": True}, "N": {"value": "1"}},
    })
    assert request["domains"] == ["shop.example.com"] and request["start_command"] == "node server.js"
    assert request["env"] == {"NODE_ENV": "production", "N": "1"} and request["secret_env"] == {"PW": "x"}
    for bad in ({"name": "web", "project": "shop"}, {"name": "web", "project": "shop", "repo": REPO, "colour": 1},
                {"name": "web", "project": "shop", "repo": REPO, "domain": "a.com", "domains": []},
                {"name": "web", "project": "shop", "repo": REPO, "start": "a", "start_command": "b"},
                ["web"], {"name": "Web", "project": "shop", "repo": REPO}):
        with pytest.raises(ValidationError):
            registry.app_request(bad)


# -- the inventory -------------------------------------------------------------------------


def test_inventory_reads_everything_in_a_fixed_number_of_queries(reg):
    def count_queries(callback):
        statements = []
        reg.conn.set_trace_callback(statements.append)
        try:
            callback()
        finally:
            reg.conn.set_trace_callback(None)
        return len([s for s in statements if s.lstrip().upper().startswith("SELECT")])

    small = count_queries(reg.inventory)
    for number in range(20):
        reg.add_container(f"c{number}")
        reg.add_app(f"p{number}", "web", REPO, container=f"c{number}", domains=[f"p{number}.example.com"],
                    env={"A": "1"}, secret_env={"B": "2222"})
    assert count_queries(reg.inventory) == small == 6
    data = reg.inventory()
    assert len(data["containers"]) == 20
    assert data["containers"][0]["projects"]["p0"]["apps"]["web"]["secret_env"] == ["B"]


def test_layout():
    assert registry.layout("shop", "web") == {"app_dir": "/root/apps/shop/web", "deploy_dir": "/root/deploy/shop/web",
                                              "backup_dir": "/root/backups/shop/web"}


# -- jobs ----------------------------------------------------------------------------------


def test_job_lifecycle(reg):
    reg.add_container("web1")
    reg.add_app("shop", "web", REPO, container="web1")
    job_id = reg.create_job("deploy", "app/shop/web", "cli:root")
    job = reg.get_job(job_id)
    assert (job["status"], job["container"], job["project"], job["started_at"]) == ("queued", "web1", "shop", None)
    assert reg.start_job(job_id)["status"] == "running"
    with pytest.raises(Conflict, match="not queued"):
        reg.start_job(job_id)
    job = reg.finish_job(job_id, "successful", commit="0123abcd" * 5, summary="deployed v2", log="ok\x00\n",
                         changed={"web1": 3})
    assert (job["status"], job["commit"], job["log"], job["changed"]) == (
        "successful", "0123abcd" * 5, "ok\n", {"web1": 3})
    assert job["finished_at"]
    with pytest.raises(Conflict, match="already finished"):
        reg.finish_job(job_id, "failed")


def test_job_values_are_validated(reg):
    refused = (("Deploy", "app/shop/web", "me"), ("deploy", "shop/web", "me"), ("deploy", "app/shop", "me"),
               ("deploy", "vm/x", "me"), ("deploy", "app/shop/web", "a\nb"))
    for kind, target, who in refused:
        with pytest.raises(ValidationError):
            reg.create_job(kind, target, who)
    job_id = reg.create_job("container-create", "container/web9", "web:admin")
    assert reg.get_job(job_id)["container"] == "web9"
    with pytest.raises(ValidationError):
        reg.finish_job(job_id, "done")
    with pytest.raises(ValidationError):
        reg.finish_job(job_id, "failed", commit="main")
    with pytest.raises(ValidationError):
        reg.finish_job(job_id, "failed", changed={1, 2})
    with pytest.raises(NotFound):
        reg.get_job(9999)


def test_list_jobs_filters_newest_first(reg):
    reg.add_container("web1")
    reg.add_container("web2")
    reg.add_app("shop", "web", REPO, container="web1")
    deploy = reg.create_job("deploy", "app/shop/web", "me")
    create = reg.create_job("container-create", "container/web1", "me")
    other = reg.create_job("container-create", "container/web2", "me")
    reg.finish_job(create, "failed")
    assert [j["id"] for j in reg.list_jobs()] == [other, create, deploy]
    assert [j["id"] for j in reg.list_jobs(container="web1")] == [create, deploy]
    assert [j["id"] for j in reg.list_jobs(app="shop/web")] == [deploy]
    assert [j["id"] for j in reg.list_jobs(project="shop")] == [deploy]
    assert [j["id"] for j in reg.list_jobs(status="failed")] == [create]
    assert [j["id"] for j in reg.list_jobs(status=["queued", "failed"], kind="container-create")] == [other, create]
    assert [j["id"] for j in reg.list_jobs(limit=1)] == [other]
    assert "log" not in reg.list_jobs()[0]
    with pytest.raises(ValidationError):
        reg.list_jobs(status="done")


def test_jobs_outlive_their_target(reg):
    reg.add_container("web1")
    reg.add_app("shop", "web", REPO, container="web1")
    job_id = reg.create_job("deploy", "app/shop/web", "me")
    reg.remove_container("web1", cascade=True)
    assert reg.get_job(job_id)["container"] == "web1"


# -- transactions and concurrency ----------------------------------------------------------


def test_a_transaction_groups_changes(reg):
    reg.add_container("web1")
    with pytest.raises(Conflict), reg.transaction():
        reg.add_project("shop", "web1")
        reg.add_app("shop", "web", REPO)
        reg.add_app("shop", "api", REPO)  # port 3000 again
    assert reg.list_projects() == []


def _writer(path: str, worker: int, count: int) -> None:
    """One process of the concurrent-writers test: containers, apps and jobs, one call each."""
    with Registry.open(path) as reg:
        for number in range(count):
            name = f"w{worker}-c{number}"
            reg.add_container(name)
            reg.add_app(f"w{worker}-p{number}", "web", REPO, container=name, domains=[f"{name}.example.com"])
            job_id = reg.create_job("deploy", f"app/w{worker}-p{number}/web", f"worker {worker}")
            reg.start_job(job_id)
            reg.finish_job(job_id, "successful", log="x" * 10000)


def _reader(path: str, rounds: int) -> None:
    with Registry.open(path) as reg:
        for _round in range(rounds):
            data = reg.inventory()
            # A consistent snapshot: every container's apps are there with it.
            for container in data["containers"]:
                assert len(container["projects"]) in (0, 1)


def test_concurrent_writers_lose_nothing(path):
    with Registry.open(path) as reg:
        reg.add_host("local", bridge_ipv4="10.210.0.1/16")
    workers, count = 6, 15
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_writer, args=(str(path), worker, count)) for worker in range(workers)]
    processes.append(context.Process(target=_reader, args=(str(path), 30)))
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [process.exitcode for process in processes] == [0] * len(processes)
    with Registry.open(path) as reg:
        containers = reg.list_containers()
        assert len(containers) == workers * count
        assert len({c["ipv4"] for c in containers}) == workers * count
        assert len(reg.list_apps()) == workers * count
        assert len(reg.list_jobs(status="successful", limit=1000)) == workers * count
        assert reg.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _opener(path: str) -> None:
    with Registry.open(path) as reg:
        reg.ensure_host("local")


def test_concurrent_first_opens_create_and_migrate_once(path):
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_opener, args=(str(path),)) for _number in range(6)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [process.exitcode for process in processes] == [0] * 6
    with Registry.open(path) as reg:
        assert [h["name"] for h in reg.list_hosts()] == ["local"]
        assert registry.schema_version(reg.conn) == registry.SCHEMA_VERSION


def test_a_locked_registry_waits_then_says_so(path, monkeypatch):
    Registry.open(path).close()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        monkeypatch.setattr(schema, "BUSY_TIMEOUT", 0.2)
        with Registry.open(path) as reg, pytest.raises(RegistryError, match="cannot change the registry"):
            reg.add_host("local")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


def test_umask_does_not_widen_a_new_registry(path):
    old = os.umask(0)
    try:
        Registry.open(path).close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_app_without_a_ref_follows_the_default_branch_and_can_go_back_to_it(reg):
    reg.add_container("web1")
    assert reg.add_app("shop", "web", REPO, container="web1")["ref"] is None
    assert reg.update_app("shop", "web", ref="release")["ref"] == "release"
    assert reg.update_app("shop", "web", ref=None)["ref"] is None
    assert reg.inventory()["containers"][0]["projects"]["shop"]["apps"]["web"]["ref"] is None


def test_the_live_port_is_recorded_and_forgotten_when_the_port_changes(reg):
    reg.add_container("web1")
    reg.add_app("shop", "web", REPO, container="web1")
    assert reg.get_app("shop", "web")["live_port"] is None
    assert reg.set_live_port("shop", "web", 3001) is True
    assert reg.set_live_port("shop", "web", 3001) is False  # no change
    assert reg.get_app("shop", "web")["live_port"] == 3001
    reg.update_app("shop", "web", port=4000)
    assert reg.get_app("shop", "web")["live_port"] is None
