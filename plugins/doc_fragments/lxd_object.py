# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # What the modules managing one LXD object (pool, network, profile) have in common;
    # use with dpl.platform.lxd_api and ansible.builtin.action_common_attributes.
    DOCUMENTATION = r"""
options:
  config:
    description:
      - Config keys to set. Only the keys given are managed; keys LXD set itself, and keys
        nobody asked about, are left as they are. Values are compared as LXD stores them
        (strings), so V(true) and V("true") are the same.
    type: dict
    default: {}
  description:
    description: Free-text description of the object.
    type: str
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
"""
