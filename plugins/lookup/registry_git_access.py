# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: registry_git_access
short_description: Read how a project reaches its private repositories from DPL's registry
description:
  - Returns the project's deploy key (the private half), its token for git over https and the
    git hosts' pinned keys, in the shape of O(dpl.platform.app_deploy#module:git_access).
  - The P(dpl.platform.registry#inventory) inventory leaves all of it out; C(dpl project key),
    C(dpl project token) and the first deploy put it in the registry.
  - Runs on the controller and reads the registry file directly; nothing is cached.
  - Values are marked unsafe, so a secret that contains C({{) is never templated.
author: DPL maintainers (@dpl-platform)
version_added: 0.1.0
requirements:
  - DPL's control plane package C(dpl_web) in the Python that runs Ansible.
options:
  project:
    description:
      - The project.
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
  - Use it only in a parameter the module declares C(no_log) (O(dpl.platform.app_deploy#module:git_access)
    does), or the key and the token end up in the output.
seealso:
  - plugin: dpl.platform.registry_secret
    plugin_type: lookup
"""

EXAMPLES = r"""
- name: Deploy from a private repository
  dpl.platform.app_deploy:
    project: shop
    app: api
    repo: git@git.example.com:shop/api.git
    git_access: "{{ lookup('dpl.platform.registry_git_access', project='shop') }}"
"""

RETURN = r"""
_raw:
  description:
    - One mapping with C(known_hosts) (a list of C(HOST TYPE KEY) lines), and, when the project has them,
      C(ssh_key), C(token) and C(token_user).
  type: list
  elements: dict
"""

from ansible.errors import AnsibleLookupError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.lookup import LookupBase
from ansible.utils.unsafe_proxy import wrap_var

from ansible_collections.dpl.platform.plugins.module_utils import validation
from ansible_collections.dpl.platform.plugins.plugin_utils.registry_read import read_registry


class LookupModule(LookupBase):
    """A project's deploy key, token and pinned host keys, for the deploy task (no_log)."""

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        project = self.get_option("project")
        try:
            validation.name(project, "project")
        except validation.ValidationError as exc:
            raise AnsibleLookupError(to_native(exc)) from exc
        return [wrap_var(read_registry("dpl.platform.registry_git_access", self.get_option("registry"),
                                       lambda registry: registry.git_credentials(project)))]
