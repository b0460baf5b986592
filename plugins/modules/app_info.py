#!/usr/bin/python
# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: app_info
short_description: List an app's releases and backups
version_added: 0.1.0
description:
  - Lists the releases of an app (id, commit, ref, creation time, size, which is live and
    which is previous) and its backups (file name, time, commit, size). Changes nothing.
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
- name: What can the shop's API roll back or restore to?
  dpl.platform.app_info:
    project: shop
    app: api
  register: api_history
"""

RETURN = r"""
releases:
  description: Releases on disk, oldest first.
  returned: always
  type: list
  elements: dict
  sample: [{id: 20261128T081500Z-3f2a9c1b7e4d, commit: 3f2a9c1b7e4d..., live: true, previous: false, size: 48213}]
backups:
  description: Backups on disk, oldest first.
  returned: always
  type: list
  elements: dict
  sample: [{name: 20261128T081500Z-3f2a9c1b7e4d.tar.gz, time: 20261128T081500Z, commit: 3f2a9c1b7e4d, size: 10240}]
live_port:
  description: The port of the live slot of an app deployed with O(zero_downtime) (null otherwise).
  returned: always
  type: int
live_release:
  description: The live release.
  returned: always
  type: str
previous_release:
  description: The previous release.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dpl.platform.plugins.module_utils.app_pipeline import app_argument_spec, run_module


def main():
    module = AnsibleModule(argument_spec=app_argument_spec(), supports_check_mode=True)
    run_module(module, lambda pipeline: pipeline.info())


if __name__ == "__main__":
    main()
