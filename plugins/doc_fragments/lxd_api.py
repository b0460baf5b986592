# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # How a module reaches the LXD API: shared by every module that manages LXD objects.
    DOCUMENTATION = r"""
options:
  lxd_endpoint:
    description:
      - Where the LXD API answers. V(unix:) is the local socket (found from E(LXD_SOCKET),
        E(LXD_DIR), then the Debian and snap locations), V(unix:/path) a given socket,
        V(https://host:port) a remote LXD, which then needs O(client_cert), O(client_key) and
        O(server_cert).
    type: str
    default: "unix:"
  lxd_project:
    description:
      - LXD project to work in.
    type: str
    default: default
  client_cert:
    description:
      - PEM client certificate trusted by the remote LXD (HTTPS endpoints only).
    type: path
  client_key:
    description:
      - PEM key of O(client_cert).
    type: path
  server_cert:
    description:
      - PEM certificate the remote LXD must present, compared byte for byte.
    type: path
  api_timeout:
    description:
      - Seconds to wait for each LXD API request.
    type: int
    default: 30
"""
