#!/usr/bin/python
# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: app_rollback
short_description: Switch an app back to its previous release
version_added: 0.1.0
description:
  - Makes the previous release live again, restarts the app and checks its health; the
    release that was live becomes the previous one, so a second rollback undoes the first.
  - The previous release is found by reading the C(.previous) link written at every switch,
    never by modification time. Nothing is rebuilt, so it works without network access.
  - When the previous release does not pass its health check, switches back and fails.
author: DPL maintainers (@dpl-platform)
extends_documentation_fragment:
  - dpl.platform.app
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Back to the release before
  dpl.platform.app_rollback:
    project: shop
    app: api
    port: 4000
"""

RETURN = r"""
release:
  description: The release live after the rollback.
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
commit:
  description: Commit of the release now live.
  returned: success
  type: str
failed_step:
  description: The step that failed.
  returned: failure
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dpl.platform.plugins.module_utils.app_pipeline import app_argument_spec, run_module


def main():
    module = AnsibleModule(argument_spec=app_argument_spec(), supports_check_mode=True)
    run_module(module, lambda pipeline: pipeline.rollback())


if __name__ == "__main__":
    main()
