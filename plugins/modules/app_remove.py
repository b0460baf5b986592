#!/usr/bin/python
# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: app_remove
short_description: Take an app out of service in its container, keeping its backups
version_added: 0.2.0
description:
  - Stops and disables the app's systemd unit, deletes the unit, its environment file (the
    app's secrets) and start script, the live link, every release and the git checkout.
    The backups in O(backups_root) stay, so the app can be restored later.
  - Every path and unit name comes from the same definition the deploys use, so what a
    deploy made is what goes. Fails when the service still runs after it was stopped.
  - Holds the app's lock, so it waits for a deploy, rollback or restore still running.
author: DPL maintainers (@dpl-platform)
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
"""

EXAMPLES = r"""
- name: Take the shop's old API out of service (its backups stay)
  dpl.platform.app_remove:
    project: shop
    app: old-api
"""

RETURN = r"""
removed:
  description: The paths that were removed (in check mode, that would be).
  returned: always
  type: list
  elements: str
  sample: [/etc/systemd/system/dpl-shop_old-api.service, /root/apps/shop/old-api]
kept_backups:
  description: The folder of the app's backups, which is kept.
  returned: always
  type: str
  sample: /root/backups/shop/old-api
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dpl.platform.plugins.module_utils.app_pipeline import app_argument_spec, run_module


def main():
    module = AnsibleModule(argument_spec=app_argument_spec(), supports_check_mode=True)
    run_module(module, lambda pipeline: pipeline.remove())


if __name__ == "__main__":
    main()
