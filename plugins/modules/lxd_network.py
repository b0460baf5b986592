#!/usr/bin/python
# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: lxd_network
short_description: Manage an LXD managed network (the containers' bridge)
version_added: 0.1.0
description:
  - Creates, updates or removes an LXD managed network through the LXD REST API.
  - Only the config keys given are managed; keys LXD set itself are left as they are.
  - DPL's default bridge has NAT and routing off, so containers reach the host and each
    other but nothing beyond; turn O(config) C(ipv4.nat) on where containers need the internet.
author: DPL maintainers (@dpl-platform)
options:
  name:
    description: Name of the network (also the host's interface name, at most 15 characters).
    type: str
    required: true
  type:
    description: Network type. LXD cannot change it in place.
    type: str
    default: bridge
    choices: [bridge, macvlan, sriov, ovn, physical]
  state:
    description: Whether the network exists. LXD refuses to remove a network still in use.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - dpl.platform.lxd_object
  - dpl.platform.lxd_api
  - ansible.builtin.action_common_attributes
"""

EXAMPLES = r"""
- name: A bridge for the app containers, no NAT, no routing
  dpl.platform.lxd_network:
    name: dplbr0
    config:
      ipv4.address: 10.210.0.1/24
      ipv4.nat: false
      ipv4.routing: false
      ipv4.firewall: true
      ipv6.address: none
"""

RETURN = r"""
name:
  description: Name of the network.
  returned: always
  type: str
  sample: dplbr0
created:
  description: Whether the network was created by this task.
  returned: when created
  type: bool
changed_keys:
  description: Config keys that were changed.
  returned: when changed
  type: list
  elements: str
object:
  description: The network as LXD describes it after the task.
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
        type=dict(type="str", default="bridge", choices=["bridge", "macvlan", "sriov", "ovn", "physical"]),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    if len(params["name"]) > 15:
        module.fail_json(msg="network name %r is longer than 15 characters, the limit of a Linux "
                             "interface name" % params["name"])
    ensure_lxd_object(module, "/1.0/networks", params["name"], params["state"],
                      config=params["config"], description=params["description"],
                      create_only={"type": params["type"]})


if __name__ == "__main__":
    main()
