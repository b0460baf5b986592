#!/usr/bin/python
# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: nft_table
short_description: Own one nftables table, replaced as a whole
version_added: 0.2.0
description:
  - Makes one nftables table hold exactly O(content) (its chains, sets and rules, in C(nft)
    syntax), or removes it. The table is DPL's alone; whatever else is in it is replaced.
  - The table is written in one C(nft -f) transaction (created, deleted and created again), so
    the old rules stay in force until the new ones are all accepted.
  - The table carries a comment with the SHA-256 of O(content); the module compares that, not
    C(nft)'s own rendering (which reformats rules), so a second run changes nothing.
  - Rules do not survive a reboot of the host; run the play again after one (DPL's set-up does).
author: DPL maintainers (@dpl-platform)
options:
  name:
    description: The table's name.
    type: str
    required: true
  family:
    description: The table's address family.
    type: str
    choices: [inet, ip, ip6, bridge, arp, netdev]
    default: inet
  content:
    description:
      - The table's body in C(nft) syntax, one statement per line (chains with their hooks,
        sets, rules). Required with O(state=present).
    type: str
  state:
    description: Whether the table exists.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
seealso:
  - module: dpl.platform.bridge_isolation
"""

EXAMPLES = r"""
- name: Only the bridge reaches port 9418 of the bridge address
  dpl.platform.nft_table:
    name: dpl_git
    content: |
      chain input {
        type filter hook input priority 0; policy accept;
        ip daddr 10.210.0.1 tcp dport 9418 iifname != "dplbr0" reject with tcp reset
      }
"""

RETURN = r"""
digest:
  description: SHA-256 of O(content) as the table's comment records it (empty when absent).
  returned: always
  type: str
"""

import hashlib
import re

from ansible.module_utils.basic import AnsibleModule

# Table names this module writes unquoted into an nft script: a plain identifier.
IDENTIFIER = re.compile(r"[a-z][a-z0-9_]{0,63}")
COMMENT = re.compile(r'^\s*comment "dpl sha256 ([0-9a-f]{64})"\s*$', re.MULTILINE)


def digest(content):
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def script(family, name, content):
    """Create-if-missing, delete, create: one transaction, never a moment without rules."""
    return "table %s %s {}\ndelete table %s %s\ntable %s %s {\n  comment \"dpl sha256 %s\"\n%s\n}\n" % (
        family, name, family, name, family, name, digest(content), content.rstrip("\n"))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            family=dict(type="str", default="inet", choices=["inet", "ip", "ip6", "bridge", "arp", "netdev"]),
            content=dict(type="str"),
            state=dict(type="str", default="present", choices=["present", "absent"]),
        ),
        required_if=[("state", "present", ["content"])],
        supports_check_mode=True,
    )
    params = module.params
    family, name = params["family"], params["name"]
    if not IDENTIFIER.fullmatch(name):
        module.fail_json(msg="name %r: use a lower-case letter then up to 63 lower-case letters, digits and '_'" % name)
    nft = module.get_bin_path("nft", required=True, opt_dirs=["/usr/sbin", "/sbin"])
    env = {"LC_ALL": "C"}
    rc, listing, _err = module.run_command([nft, "list", "table", family, name], environ_update=env)
    exists = rc == 0
    found = COMMENT.search(listing) if exists else None
    before = found.group(1) if found else ""
    want = digest(params["content"]) if params["state"] == "present" else ""
    changed = (before != want) or (exists and not want) or (want and not exists)
    result = dict(changed=bool(changed), digest=want)
    if module._diff and changed:
        result["diff"] = dict(before=listing if exists else "", after=params["content"] or "",
                              before_header="table %s %s" % (family, name),
                              after_header="table %s %s" % (family, name))
    if not changed or module.check_mode:
        module.exit_json(**result)
    if want:
        rc, _out, err = module.run_command([nft, "-f", "-"], data=script(family, name, params["content"]),
                                           binary_data=True, environ_update=env)
    else:
        rc, _out, err = module.run_command([nft, "delete", "table", family, name], environ_update=env)
    if rc != 0:
        module.fail_json(msg="nft refused table %s %s: %s" % (family, name, err.strip()), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
