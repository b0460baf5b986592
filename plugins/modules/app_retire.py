#!/usr/bin/python
# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: app_retire
short_description: Stop the old slot of an app deployed without downtime
version_added: 0.2.0
description:
  - The last step of a deploy, rollback or restore with O(dpl.platform.app_deploy#module:zero_downtime),
    once the proxy sends the app's traffic to the new live slot. Waits O(drain) seconds for the
    requests the old slot is still answering, then stops, disables and deletes every service of
    the app but the live slot's (the old slot, and the one service of an app that ran in place
    before).
  - Does nothing when only the live slot runs, or when no slot is live (an app restarted in place).
  - Holds the app's lock; unit and file names come from the same definition the deploys use.
author: DPL maintainers (@dpl-platform)
options:
  drain:
    description: Seconds to let the old slot finish the requests it has before it stops.
    type: float
    default: 1.0
extends_documentation_fragment:
  - dpl.platform.app
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
seealso:
  - module: dpl.platform.app_deploy
"""

EXAMPLES = r"""
- name: The shop's old slot stops, now that nginx sends its traffic to the new one
  dpl.platform.app_retire:
    project: shop
    app: web
    port: 3000
"""

RETURN = r"""
live_port:
  description: The port of the live slot, which keeps running.
  returned: always
  type: int
retired:
  description: The ports of the slots stopped and deleted (V(in place) for the app's former one service).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dpl.platform.plugins.module_utils.app_pipeline import app_argument_spec, run_module


def main():
    module = AnsibleModule(argument_spec=app_argument_spec(drain=dict(type="float", default=1.0)),
                           supports_check_mode=True)
    run_module(module, lambda pipeline: pipeline.retire(max(0.0, min(module.params["drain"], 60.0))))


if __name__ == "__main__":
    main()
