# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: registry_secret
short_description: Read an app's secret environment variables from DPL's registry
description:
  - Returns the values of an app's secret environment variables, which the
    P(dpl.platform.registry#inventory) inventory deliberately leaves out (it lists only their
    names, in C(secret_env_names)).
  - Runs on the controller and reads the registry file directly; nothing is cached.
  - With terms, returns the value of each named variable. Without terms, returns one mapping of
    every secret variable of the app to its value.
  - Values are marked unsafe, so a secret that contains C({{) is never templated.
author: DPL maintainers (@dpl-platform)
version_added: 0.1.0
requirements:
  - DPL's control plane package C(dpl_web) in the Python that runs Ansible.
options:
  _terms:
    description:
      - Names of secret variables of the app.
    type: list
    elements: str
    required: false
  project:
    description:
      - The app's project.
    type: str
    required: true
  app:
    description:
      - The app's name.
    type: str
    required: true
  registry:
    description:
      - The registry file. The P(dpl.platform.registry#inventory) inventory sets C(dpl_registry) on
        its hosts to the file it read, so tasks on those hosts read the same one.
      - Without it, E(DPL_REGISTRY), else C(~/.local/share/dpl/registry.sqlite3).
    type: path
    env:
      - name: DPL_REGISTRY
    vars:
      - name: dpl_registry
notes:
  - Set C(no_log) on every task that uses this lookup, or the secret ends up in the output, in
    the job's log and in callback plugins' records.
seealso:
  - plugin: dpl.platform.registry
    plugin_type: inventory
"""

EXAMPLES = r"""
- name: Write the app's environment file, secrets included
  ansible.builtin.copy:
    dest: "{{ app.app_dir }}/shared/.env"
    mode: "0600"
    content: |
      {% for name, value in (app.env | combine(secrets)).items() %}
      {{ name }}={{ value | quote }}
      {% endfor %}
  vars:
    app: "{{ dpl_projects.shop.apps.web }}"
    secrets: "{{ lookup('dpl.platform.registry_secret', project='shop', app='web') }}"
  no_log: true

- name: One secret
  ansible.builtin.command:
    argv: [/usr/local/bin/check-db, --password-stdin]
    stdin: "{{ lookup('dpl.platform.registry_secret', 'DB_PASSWORD', project='shop', app='web') }}"
  no_log: true
  changed_when: false
"""

RETURN = r"""
_raw:
  description:
    - The values of the named variables, or, without terms, one mapping of name to value.
  type: list
  elements: raw
"""

from ansible.errors import AnsibleLookupError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.lookup import LookupBase
from ansible.utils.unsafe_proxy import wrap_var

from ansible_collections.dpl.platform.plugins.module_utils import validation
from ansible_collections.dpl.platform.plugins.plugin_utils.registry_read import read_registry


class LookupModule(LookupBase):
    """Secret values straight from the registry file, for tasks that run with no_log."""

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        project, app = self.get_option("project"), self.get_option("app")
        try:
            validation.name(project, "project")
            validation.app_name(app, "app")
            names = [validation.env_name(term, "variable") for term in terms]
        except validation.ValidationError as exc:
            raise AnsibleLookupError(to_native(exc)) from exc
        secrets = read_registry("dpl.platform.registry_secret", self.get_option("registry"),
                                lambda registry: registry.app_secrets(project, app))
        if not names:
            return [wrap_var(secrets)]
        missing = [name for name in names if name not in secrets]
        if missing:
            # Names only: the values of the others must not appear in an error either.
            raise AnsibleLookupError(
                "app %s/%s has no secret variable %s (it has: %s); set one with "
                "`dpl app edit %s/%s --secret NAME`"
                % (project, app, ", ".join(missing), ", ".join(secrets) or "none", project, app))
        return [wrap_var(secrets[name]) for name in names]
