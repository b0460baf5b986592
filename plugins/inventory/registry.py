# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: registry
short_description: DPL's registry of containers, projects and apps as an Ansible inventory
description:
  - Reads DPL's registry (an SQLite file) and makes one inventory host per LXD container,
    reached through the P(dpl.platform.lxd#connection) connection, with variables that
    describe its LXD host, the container and the projects and apps it runs.
  - "Groups: C(dpl_containers) (every container), C(dpl_host_<host>) (the containers of an
    LXD host), C(dpl_project_<project>) and C(dpl_app_<project>_<app>); a C(-) in a name
    becomes C(_) in the group name."
  - Supports the P(ansible.builtin.constructed#inventory) options O(compose), O(groups) and
    O(keyed_groups), and inventory caching.
  - The configuration file's name must end in C(dpl.yml), C(dpl.yaml), C(registry.yml) or
    C(registry.yaml).
author: DPL maintainers (@dpl-platform)
version_added: 0.1.0
requirements:
  - DPL's control plane package C(dpl_web) in the Python that runs Ansible (C(scripts/setup)
    installs it in the checkout's virtualenv).
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description:
      - Marks the file as a configuration of this plugin.
    type: str
    required: true
    choices: [dpl.platform.registry]
  registry:
    description:
      - The registry file. A relative path given here is relative to the directory of the
        configuration file; C(~) and environment variables are expanded.
      - Without it, E(DPL_REGISTRY), else C(~/.local/share/dpl/registry.sqlite3) (under
        E(XDG_DATA_HOME) when set).
      - The file must exist (C(dpl init) or C(scripts/setup) creates it); the plugin never
        creates an empty one.
    type: str
    env:
      - name: DPL_REGISTRY
  container:
    description:
      - Read only this container of the registry (with its LXD host, projects and apps), not
        the others. DPL's jobs set it for a job on an app or a project, so a deploy costs the
        same however many containers the registry holds. A scoped read never uses the cache.
    type: str
    env:
      - name: DPL_INVENTORY_CONTAINER
  python_interpreter:
    description:
      - The Python inside the containers, set as C(ansible_python_interpreter).
    type: str
    default: /usr/bin/python3
notes:
  - Every value read from the registry is marked unsafe, so a Jinja expression such as C({{ 7 * 6 }})
    in a command or an environment variable is passed on literally and never templated.
  - Secret environment variables are not in the inventory at all; each app lists their names in
    C(secret_env_names). Tasks that need a value read it with the
    P(dpl.platform.registry_secret#lookup) lookup and set C(no_log) on themselves.
  - The whole registry is read with a fixed number of queries, so the cost grows linearly with
    the number of containers and apps, without a query per host.
  - "Variables of each host: C(ansible_connection) (V(dpl.platform.lxd)), C(ansible_python_interpreter),
    C(dpl_lxd_instance), C(dpl_lxd_endpoint) and, for HTTPS endpoints, C(dpl_lxd_client_cert),
    C(dpl_lxd_client_key) and C(dpl_lxd_server_cert); C(dpl_host) (name, endpoint, public_ipv4,
    nginx_sites_dir, bridge, bridge_ipv4); C(dpl_container) (name, host, image, profiles, limits,
    ipv4, status, status_at); C(dpl_projects), a mapping of project name to C(name) and C(apps),
    a mapping of app name to the app (project, name, repo, ref, port, domains, deploy_script,
    start_command, health_path, keep_releases, keep_backups, env, secret_env_names, app_dir,
    deploy_dir, backup_dir, and host_backup_dir: where copies of its backups are kept on the
    controller); and C(dpl_registry), the registry file read."
  - What all containers of one LXD host share (the connection settings and C(dpl_host)) is set on
    its C(dpl_host_<host>) group, C(dpl_registry) on C(dpl_containers); the rest on each host.
  - Notes are not in the inventory; C(dpl container show) and C(dpl app show) print them.
seealso:
  - plugin: dpl.platform.lxd
    plugin_type: connection
  - plugin: dpl.platform.registry_secret
    plugin_type: lookup
"""

EXAMPLES = r"""
# inventory/dpl.yml: the registry named by DPL_REGISTRY, or the default one
plugin: dpl.platform.registry

# A given registry, cached for an hour, with constructed groups and variables
plugin: dpl.platform.registry
registry: /srv/dpl/registry.sqlite3
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/dpl/inventory
cache_timeout: 3600
strict: true
compose:
  # Every domain the container serves, as one list
  dpl_domains: dpl_projects.values() | map(attribute='apps') | map('dict2items') | flatten
    | map(attribute='value.domains') | flatten
groups:
  # Containers LXD reported as running when a playbook last looked
  running: dpl_container.status == 'Running'
keyed_groups:
  # image_dpl_base, image_debian_12, ...
  - prefix: image
    key: dpl_container.image
  # status_running, status_stopped, ...
  - prefix: status
    key: dpl_container.status | lower

# Use it:
#   ansible-inventory -i inventory/dpl.yml --graph
#   ansible-playbook -i inventory/dpl.yml playbooks/deploy.yml -e app=all --limit 'dpl_app_shop_web:localhost'
"""

import os
import sqlite3

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.inventory.helpers import get_group_vars
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.display import Display
from ansible.utils.unsafe_proxy import wrap_var
from ansible.utils.vars import combine_vars

from ansible_collections.dpl.platform.plugins.module_utils import validation

try:
    from dpl_web import paths as dpl_paths
    from dpl_web import registry as dpl_registry
except ImportError as exc:  # the plugin is documented and sanity-tested without the control plane
    dpl_paths = dpl_registry = None
    DPL_IMPORT_ERROR = exc
else:
    DPL_IMPORT_ERROR = None

display = Display()

CONFIG_SUFFIXES = ("dpl.yml", "dpl.yaml", "registry.yml", "registry.yaml")
CONNECTION = "dpl.platform.lxd"
ALL_GROUP = "dpl_containers"
CACHE_FORMAT = 2  # bump when the cached data's shape changes

# What the inventory tells playbooks about a container and an app. Notes are left out:
# they are for humans (`dpl container show`), and every value costs on every run.


def group_part(name):
    """A registry name as part of a group name: RFC 1123 labels have '-', groups may not."""
    return name.replace("-", "_")


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    """One host per container of DPL's registry, grouped by LXD host, project and app."""

    NAME = "dpl.platform.registry"

    def verify_file(self, path):
        """Only files named like ours: other YAML inventories are none of this plugin's business."""
        return super().verify_file(path) and path.endswith(CONFIG_SUFFIXES)

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        if dpl_registry is None:
            raise AnsibleError(
                "the dpl.platform.registry inventory needs DPL's control plane (the dpl_web package) in the "
                "Python that runs Ansible: run scripts/setup, or `pip install -e` the DPL checkout "
                "(import failed: %s)" % to_native(DPL_IMPORT_ERROR))
        self._read_config_data(path)
        registry_path = self._registry_path(path)
        only = self.get_option("container") or None
        if only is not None:
            try:
                validation.container_name(only, "container")
            except validation.ValidationError as exc:
                raise AnsibleParserError("%s: %s" % (path, to_native(exc))) from exc
            self._populate(self._read_registry(registry_path, path, only), registry_path)
            return

        # The usual Cacheable dance: read the cache unless told to refresh (cache=False),
        # and write it whenever the registry had to be read.
        use_cache = self.get_option("cache")
        cache_key = self.get_cache_key(path)
        data = None
        if use_cache and cache:
            try:
                data = self._cache[cache_key]
            except KeyError:
                data = None
            # A cache made from another registry file (DPL_REGISTRY changed) does not count.
            if not isinstance(data, dict) or data.get("registry") != registry_path \
                    or data.get("format") != CACHE_FORMAT:
                data = None
        if data is None:
            data = self._read_registry(registry_path, path)
            if use_cache:
                self._cache[cache_key] = data
        # Whatever the source (the registry or a cache file), every value is wrapped unsafe
        # before Ansible sees it.
        self._populate(data, registry_path)

    def _registry_path(self, config_path):
        """The option's value; a relative path in the configuration file is relative to that
        file (so a checkout can ship a config next to a registry), one from the environment
        to the current directory, as for the dpl command."""
        value, origin = self.get_option_and_origin("registry")
        if not value:
            return str(dpl_paths.registry_path())
        value = os.path.expanduser(os.path.expandvars(value))
        if not os.path.isabs(value) and str(origin).lower() == "direct":
            value = os.path.join(os.path.dirname(os.path.abspath(config_path)), value)
        return os.path.abspath(value)

    def _read_registry(self, registry_path, config_path, container=None):
        try:
            registry = dpl_registry.Registry.open(registry_path, create=False)
        except dpl_registry.RegistryError as exc:
            raise AnsibleParserError("%s: %s" % (config_path, to_native(exc.explain()))) from exc
        try:
            data = registry.inventory(container=container)
        except (dpl_registry.RegistryError, sqlite3.Error) as exc:
            raise AnsibleParserError("%s: cannot read the DPL registry %s: %s"
                                     % (config_path, registry_path, to_native(exc))) from exc
        finally:
            registry.close()
        data["registry"] = registry_path
        data["format"] = CACHE_FORMAT
        return data

    @staticmethod
    def _valid(container):
        """The names that become host and group names, and what the connection uses, checked by
        DPL's validation layer again (the file may have been edited by hand)."""
        validation.container_name(container["name"], "container")
        validation.ipv4(container["ipv4"], "ipv4")
        for project in container["projects"].values():
            validation.name(project["name"], "project")
            for app in project["apps"].values():
                validation.app_name(app["name"], "app")

    def _populate(self, data, registry_path):
        """Hosts, groups and variables from the registry data.

        What all containers of an LXD host share (how to reach it, ``dpl_host``) is set once
        on its ``dpl_host_<host>`` group rather than on every host: Ansible copies and tags
        every value passed to set_variable, so per-host variables are what an inventory of a
        thousand containers pays for.
        """
        inventory = self.inventory
        strict = self.get_option("strict")
        compose = self.get_option("compose")
        groups = self.get_option("groups")
        keyed_groups = self.get_option("keyed_groups")
        constructed = bool(compose or groups or keyed_groups)

        inventory.add_group(ALL_GROUP)
        inventory.set_variable(ALL_GROUP, "dpl_registry", wrap_var(registry_path))

        host_groups = {}
        for name, host in data["hosts"].items():
            try:
                validation.name(name, "host")
                validation.lxd_endpoint(host["endpoint"], "endpoint")
            except validation.ValidationError as exc:
                display.warning("DPL registry %s: skipping host %r: %s" % (registry_path, name, to_native(exc)))
                continue
            group = inventory.add_group("dpl_host_" + group_part(name))
            host_groups[name] = group
            group_vars = {
                "ansible_connection": CONNECTION,
                "ansible_python_interpreter": self.get_option("python_interpreter"),
                "dpl_lxd_endpoint": host["endpoint"],
                "dpl_host": {key: host[key] for key in (
                    "name", "endpoint", "public_ipv4", "nginx_sites_dir", "bridge", "bridge_ipv4")},
            }
            for key in ("client_cert", "client_key", "server_cert"):
                if host[key]:
                    group_vars["dpl_lxd_" + key] = host[key]
            for key, value in wrap_var(group_vars).items():
                inventory.set_variable(group, key, value)

        app_groups = {}
        for container in data["containers"]:
            try:
                self._valid(container)
            except validation.ValidationError as exc:
                display.warning("DPL registry %s: skipping container %r: %s"
                                % (registry_path, container.get("name"), to_native(exc)))
                continue
            if container["host"] not in host_groups:
                display.warning("DPL registry %s: skipping container %r: its host %r was skipped"
                                % (registry_path, container["name"], container["host"]))
                continue
            name = container["name"]
            projects = {}
            for project_name, project in container["projects"].items():
                apps = {}
                for app_name, app in project["apps"].items():
                    entry = {key: app[key] for key in dpl_registry.INVENTORY_KEYS["app"]}
                    entry["secret_env_names"] = app["secret_env"]
                    entry.update(dpl_registry.layout(project_name, app_name))
                    entry["host_backup_dir"] = str(dpl_paths.host_backups_dir(registry_path) / project_name / app_name)
                    apps[app_name] = entry
                projects[project_name] = {"name": project_name, "apps": apps}
            hostvars = wrap_var({
                "dpl_lxd_instance": name,
                "dpl_container": {key: container[key] for key in dpl_registry.INVENTORY_KEYS["container"]},
                "dpl_projects": projects,
            })

            inventory.add_host(name, group=ALL_GROUP)
            for key, value in hostvars.items():
                inventory.set_variable(name, key, value)
            inventory.add_child(host_groups[container["host"]], name)
            for project_name, project in projects.items():
                inventory.add_child(inventory.add_group("dpl_project_" + group_part(project_name)), name)
                for app_name in project["apps"]:
                    group = "dpl_app_%s_%s" % (group_part(project_name), group_part(app_name))
                    key = "%s/%s" % (project_name, app_name)
                    if app_groups.setdefault(group, key) != key:
                        display.warning("DPL registry %s: apps %s and %s share the group name %s; target them "
                                        "by project group or host instead" % (registry_path, app_groups[group],
                                                                              key, group))
                    inventory.add_child(inventory.add_group(group), name)

            # Constructed features cost a template per host and expression: only when configured.
            if constructed:
                self._construct(name, compose, groups, keyed_groups, strict)

    def _construct(self, name, compose, groups, keyed_groups, strict):
        """compose, groups and keyed_groups for one host, seeing its group variables too."""
        host = self.inventory.get_host(name)
        variables = combine_vars(get_group_vars(host.get_groups()), host.get_vars())
        if compose:
            self._set_composite_vars(compose, variables, name, strict=strict)
            variables = combine_vars(get_group_vars(host.get_groups()), host.get_vars())
        if groups:
            self._add_host_to_composed_groups(groups, variables, name, strict=strict, fetch_hostvars=False)
        if keyed_groups:
            self._add_host_to_keyed_groups(keyed_groups, variables, name, strict=strict, fetch_hostvars=False)
