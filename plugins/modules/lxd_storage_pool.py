#!/usr/bin/python
# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: lxd_storage_pool
short_description: Manage an LXD storage pool
version_added: 0.1.0
description:
  - Creates, updates or removes an LXD storage pool through the LXD REST API.
  - Only the config keys given are managed; keys LXD set itself are left as they are.
author: DPL maintainers (@dpl-platform)
options:
  name:
    description: Name of the storage pool.
    type: str
    required: true
  driver:
    description:
      - Storage driver. LXD cannot change the driver of an existing pool, so a pool that
        exists with another driver fails the task instead of being recreated.
    type: str
    default: dir
    choices: [dir, btrfs, lvm, zfs, ceph, cephfs]
  state:
    description: Whether the pool exists. LXD refuses to remove a pool still in use.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - dpl.platform.lxd_object
  - dpl.platform.lxd_api
  - ansible.builtin.action_common_attributes
"""

EXAMPLES = r"""
- name: Keep containers in a directory-backed pool
  dpl.platform.lxd_storage_pool:
    name: dpl
    driver: dir
"""

RETURN = r"""
name:
  description: Name of the pool.
  returned: always
  type: str
  sample: dpl
created:
  description: Whether the pool was created by this task.
  returned: when created
  type: bool
changed_keys:
  description: Config keys that were changed.
  returned: when changed
  type: list
  elements: str
object:
  description: The pool as LXD describes it after the task.
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
        driver=dict(type="str", default="dir", choices=["dir", "btrfs", "lvm", "zfs", "ceph", "cephfs"]),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    ensure_lxd_object(module, "/1.0/storage-pools", params["name"], params["state"],
                      config=params["config"], description=params["description"],
                      create_only={"driver": params["driver"]})


if __name__ == "__main__":
    main()
