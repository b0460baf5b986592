#!/usr/bin/python
# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: lxd_profile
short_description: Manage an LXD profile's config and devices
version_added: 0.1.0
description:
  - Creates, updates or removes an LXD profile through the LXD REST API.
  - Only the config keys and devices given are managed; other keys and devices are left as
    they are, so the task can wire the C(default) profile without owning all of it.
author: DPL maintainers (@dpl-platform)
options:
  name:
    description: Name of the profile.
    type: str
    required: true
  devices:
    description: Devices to set, by device name; each is replaced as a whole when it differs.
    type: dict
    default: {}
  state:
    description: Whether the profile exists. LXD refuses to remove the C(default) profile.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - dpl.platform.lxd_object
  - dpl.platform.lxd_api
  - ansible.builtin.action_common_attributes
"""

EXAMPLES = r"""
- name: New containers get their root disk from the dpl pool and a nic on the dpl bridge
  dpl.platform.lxd_profile:
    name: default
    devices:
      root: {type: disk, path: /, pool: dpl}
      eth0: {type: nic, name: eth0, network: dplbr0}
"""

RETURN = r"""
name:
  description: Name of the profile.
  returned: always
  type: str
  sample: default
created:
  description: Whether the profile was created by this task.
  returned: when created
  type: bool
changed_keys:
  description: Config keys that were changed.
  returned: when changed
  type: list
  elements: str
changed_devices:
  description: Devices that were added or replaced.
  returned: when changed
  type: list
  elements: str
object:
  description: The profile as LXD describes it after the task.
  returned: when state is present
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dpl.platform.plugins.module_utils.lxd_module import (
    ensure_lxd_object,
    lxd_object_argument_spec,
)


def main():
    argument_spec = lxd_object_argument_spec(
        devices=dict(type="dict", default={}),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    ensure_lxd_object(module, "/1.0/profiles", params["name"], params["state"],
                      config=params["config"], devices=params["devices"],
                      description=params["description"])


if __name__ == "__main__":
    main()
