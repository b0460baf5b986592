#!/usr/bin/python
# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: app_restore
short_description: Rebuild a release of an app from one of its backups and make it live
version_added: 0.1.0
description:
  - Checks the backup archive first, and extracts nothing when any member has an absolute
    path or C(..), is a symbolic link pointing outside the release, a hard link, or a device
    or other special file.
  - Extracts it into a new release, installs dependencies again (the deploy script, or npm
    for a Node app), then switches to it, restarts and checks health like a deploy. On
    failure the previous version keeps serving.
author: DPL maintainers (@dpl-platform)
options:
  backup:
    description: File name of the backup in C(<backups_root>/<project>/<app>) (see M(dpl.platform.app_info)).
    type: str
    required: true
extends_documentation_fragment:
  - dpl.platform.app
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Checks the archive and reports; extracts nothing.
  diff_mode:
    support: full
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Put back the backup made before this morning's deploy
  dpl.platform.app_restore:
    project: shop
    app: api
    port: 4000
    backup: 20261128T081500Z-3f2a9c1b7e4d.tar.gz
"""

RETURN = r"""
release:
  description: The release made from the backup, now live.
  returned: success
  type: str
live_port:
  description: The port of the service now live (the new slot with O(zero_downtime)).
  returned: success
  type: int
retire:
  description:
    - With O(zero_downtime), what still runs besides the live slot until
      P(dpl.platform.app_retire#module) stops it. The ports of the other slots, and
      V(in place) for the app's one service from before it had domains.
  returned: when a release is live in a slot
  type: list
  elements: str
replaced_release:
  description: The release that was live before.
  returned: success
  type: str
failed_step:
  description: The step that failed (restore when the archive was refused).
  returned: failure
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dpl.platform.plugins.module_utils.app_pipeline import app_argument_spec, run_module


def main():
    module = AnsibleModule(
        argument_spec=app_argument_spec(backup=dict(type="str", required=True)),
        supports_check_mode=True,
    )
    run_module(module, lambda pipeline: pipeline.restore(module.params["backup"]))


if __name__ == "__main__":
    main()
