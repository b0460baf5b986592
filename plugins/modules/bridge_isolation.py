#!/usr/bin/python
# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bridge_isolation
short_description: Keep some containers of an LXD bridge to the host only
version_added: 0.2.0
description:
  - The containers on a DPL bridge reach each other directly (an API in one can use a database
    in another). The containers named in O(containers) are cut off from every other port of
    O(bridge) and can talk to the host only (nginx, DPL's git server, the DNS of the bridge).
  - "An nftables table C(bridge dpl_<bridge>) on the LXD host drops, in the bridge's forward hook,
    every frame from or to the MAC address of an isolated container. Traffic between the host and
    the container does not cross that hook, so nginx still serves it."
  - LXD 5.0's C(security.port_isolation) only separates isolated ports from each other, not from
    the other containers, and it has no per-nic ACL; hence this table. It relies on
    C(security.mac_filtering) (the P(dpl.platform.container#module) module's O(dpl.platform.container#module:filtering),
    on by default) so that a container cannot take another MAC address to slip past it.
  - The table is replaced as a whole (one C(nft -f) transaction) when its content differs; with
    no container to isolate it is deleted. Runs on the LXD host itself (it needs C(nft)); the
    rules do not survive a reboot of the host, so the container playbook applies them again at
    every container action.
author: DPL maintainers (@dpl-platform)
options:
  bridge:
    description: The LXD managed bridge (a Linux interface name).
    type: str
    required: true
  containers:
    description:
      - The containers to isolate. Their MAC addresses are read from LXD; a name LXD does not
        know (a container not created yet, or deleted) is skipped and returned in RV(skipped).
    type: list
    elements: str
    default: []
  nic:
    description: The containers' nic device on O(bridge).
    type: str
    default: eth0
extends_documentation_fragment:
  - dpl.platform.lxd_api
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
seealso:
  - module: dpl.platform.container
"""

EXAMPLES = r"""
- name: The payment container talks to the host only
  dpl.platform.bridge_isolation:
    bridge: dplbr0
    containers: [payments]
"""

RETURN = r"""
table:
  description: The nftables table that holds the rules.
  returned: always
  type: str
  sample: dpl_dplbr0
skipped:
  description: The containers of O(containers) that LXD does not have.
  returned: always
  type: list
  elements: str
macs:
  description: The MAC addresses isolated, sorted.
  returned: always
  type: list
  elements: str
  sample: ["00:16:3e:12:34:56"]
"""

import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dpl.platform.plugins.module_utils import validation
from ansible_collections.dpl.platform.plugins.module_utils.lxd import LXDError, LXDNotFound
from ansible_collections.dpl.platform.plugins.module_utils.lxd_module import lxd_argument_spec, lxd_client


def table_name(bridge):
    return "dpl_%s" % bridge.replace("-", "_")


def ruleset(table, macs):
    """The whole table as one nft script: created if missing, emptied, filled again."""
    lines = [
        "table bridge %s {" % table,
        "  set isolated { type ether_addr; }",
        "  chain forward { type filter hook forward priority 0; policy accept; }",
        "}",
        "flush chain bridge %s forward" % table,
        "flush set bridge %s isolated" % table,
        # No match on the bridge's name (meta ibrname is not in every kernel): the MAC
        # addresses are those of this bridge's containers, so the rules only meet its frames.
        "add rule bridge %s forward ether saddr @isolated drop" % table,
        "add rule bridge %s forward ether daddr @isolated drop" % table,
    ]
    if macs:
        lines.append("add element bridge %s isolated { %s }" % (table, ", ".join(macs)))
    return "\n".join(lines) + "\n"


def current_macs(module, nft, table):
    """The isolated MAC addresses the table holds now, or None when there is no table."""
    rc, out, _err = module.run_command([nft, "--json", "list", "set", "bridge", table, "isolated"],
                                       environ_update={"LC_ALL": "C"})
    if rc != 0:
        return None
    for item in json.loads(out).get("nftables", []):
        if "set" in item:
            return sorted(str(element) for element in item["set"].get("elem", []))
    return None


def read_macs(module, containers, nic):
    """(sorted MAC addresses, names LXD does not have)."""
    client = lxd_client(module)
    macs, skipped = [], []
    try:
        for name in containers:
            try:
                config = client.instance(name).get("config") or {}
            except LXDNotFound:
                skipped.append(name)
                continue
            mac = config.get("volatile.%s.hwaddr" % nic)
            if not mac:
                module.fail_json(msg="container %r has no MAC address on %s yet (volatile.%s.hwaddr): start it "
                                     "once, then run this again" % (name, nic, nic))
            macs.append(mac.lower())
    except LXDError as exc:
        module.fail_json(msg="LXD at %s: %s" % (client.describe(), exc))
    finally:
        client.close()
    return sorted(set(macs)), skipped


def main():
    argument_spec = lxd_argument_spec()
    argument_spec.update(
        bridge=dict(type="str", required=True),
        containers=dict(type="list", elements="str", default=[]),
        nic=dict(type="str", default="eth0"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    try:
        validation.interface_name(params["bridge"], "bridge")
        validation.interface_name(params["nic"], "nic")
        for name in params["containers"]:
            validation.container_name(name, "containers")
    except validation.ValidationError as exc:
        module.fail_json(msg=str(exc))
    nft = module.get_bin_path("nft", required=True, opt_dirs=["/usr/sbin", "/sbin"])
    table = table_name(params["bridge"])
    macs, skipped = read_macs(module, params["containers"], params["nic"])
    before = current_macs(module, nft, table)
    wanted = macs or None
    result = dict(changed=before != wanted, table=table, macs=macs, skipped=skipped)
    if module._diff and result["changed"]:
        result["diff"] = dict(before="".join("%s\n" % mac for mac in before or []),
                              after="".join("%s\n" % mac for mac in macs),
                              before_header="isolated on %s" % params["bridge"],
                              after_header="isolated on %s" % params["bridge"])
    if not result["changed"] or module.check_mode:
        module.exit_json(**result)
    if wanted:
        rc, _out, err = module.run_command([nft, "-f", "-"], data=ruleset(table, macs),
                                           binary_data=True, environ_update={"LC_ALL": "C"})
    else:
        rc, _out, err = module.run_command([nft, "delete", "table", "bridge", table], environ_update={"LC_ALL": "C"})
    if rc != 0:
        module.fail_json(msg="nft refused the isolation rules of %s: %s" % (params["bridge"], err.strip()), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
