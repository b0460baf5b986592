# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: lxd
short_description: Run tasks inside LXD instances over the LXD REST API
description:
  - Runs commands and transfers files in an LXD container through the LXD REST API, over the
    local unix socket or over HTTPS with a client certificate and a pinned server certificate.
  - Needs no C(lxc) client on the controller and nothing installed or listening in the container
    beyond a Python interpreter for modules.
  - Commands stream over LXD's exec websockets, and modules are pipelined by default, so a
    task costs about as much as on the C(local) connection.
author: DPL maintainers (@dpl-platform)
version_added: 0.1.0
options:
  remote_addr:
    description:
      - Name of the LXD instance to run in.
    type: str
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: dpl_lxd_instance
  remote_user:
    description:
      - User to run commands as inside the instance. The name is looked up in the instance's
        C(/etc/passwd) and mapped to its uid, primary gid and home directory.
    type: str
    default: root
    vars:
      - name: ansible_user
    env:
      - name: ANSIBLE_REMOTE_USER
    ini:
      - section: defaults
        key: remote_user
    keyword:
      - name: remote_user
  lxd_endpoint:
    description:
      - Where the LXD API answers. C(unix:) uses the local socket (found from E(LXD_SOCKET),
        E(LXD_DIR), then the Debian and snap locations), C(unix:/path) a given socket,
        C(https://host:port) a remote LXD.
    type: str
    default: "unix:"
    vars:
      - name: dpl_lxd_endpoint
    env:
      - name: DPL_LXD_ENDPOINT
  lxd_project:
    description:
      - LXD project the instance belongs to.
    type: str
    default: default
    vars:
      - name: dpl_lxd_project
    env:
      - name: DPL_LXD_PROJECT
  client_cert:
    description:
      - PEM client certificate trusted by the remote LXD (HTTPS endpoints only).
    type: path
    vars:
      - name: dpl_lxd_client_cert
    env:
      - name: DPL_LXD_CLIENT_CERT
  client_key:
    description:
      - PEM key of O(client_cert).
    type: path
    vars:
      - name: dpl_lxd_client_key
    env:
      - name: DPL_LXD_CLIENT_KEY
  server_cert:
    description:
      - PEM certificate the remote LXD must present, compared byte for byte (HTTPS endpoints
        only). Get it with C(openssl s_client) or from the server's C(server.crt).
    type: path
    vars:
      - name: dpl_lxd_server_cert
    env:
      - name: DPL_LXD_SERVER_CERT
  timeout:
    description:
      - Seconds to wait when connecting to LXD and for each API request other than a running
        command. Commands themselves are bounded by the task's C(timeout) keyword.
    type: int
    default: 30
    vars:
      - name: ansible_timeout
      - name: dpl_lxd_timeout
    env:
      - name: ANSIBLE_TIMEOUT
    ini:
      - section: defaults
        key: timeout
  persist_timeout:
    description:
      - Keep a command session open in the instance for this many idle seconds, like SSH's
        ControlPersist, so a task does not pay for a new LXD exec (see notes).
      - V(0) turns sessions off, and every command is then its own LXD exec.
    type: int
    default: 60
    vars:
      - name: dpl_lxd_persist_timeout
    env:
      - name: DPL_LXD_PERSIST_TIMEOUT
  control_dir:
    description:
      - Directory (mode 0700) for the unix sockets of the session brokers.
    type: path
    default: ~/.ansible/dpl_lxd_cp
    vars:
      - name: dpl_lxd_control_dir
    env:
      - name: DPL_LXD_CONTROL_DIR
  pipelining:
    description:
      - Send modules on the command's standard input instead of copying them to a temporary
        file first. On by default, unlike other connections, because it saves two API calls
        per task and needs nothing from the instance.
    type: bool
    default: true
    vars:
      - name: ansible_pipelining
      - name: dpl_lxd_pipelining
    env:
      - name: DPL_LXD_PIPELINING
notes:
  - Error messages name the instance and the endpoint; a missing or stopped instance fails the
    task with a message saying so, never with a traceback.
  - "Sessions: the first command for an instance starts a broker process on the controller.
    It keeps one LXD exec of a small Python loop open in the instance (C(python3 -c ...),
    reading requests on its standard input; it listens on nothing and installs nothing) and
    serves later commands over a unix socket in O(control_dir). It exits after
    O(persist_timeout) idle seconds, and the loop in the instance exits with it. Where the
    instance has no python3, commands fall back to one LXD exec each."
"""

EXAMPLES = r"""
# inventory: containers reached through the local LXD
all:
  hosts:
    shop:
      ansible_connection: dpl.platform.lxd
    blog:
      ansible_connection: dpl.platform.lxd
      dpl_lxd_instance: blog-2026
      ansible_user: app

# a remote LXD over HTTPS, its certificate pinned
all:
  vars:
    ansible_connection: dpl.platform.lxd
    dpl_lxd_endpoint: https://vps2.example.net:8443
    dpl_lxd_client_cert: ~/.config/dpl/client.crt
    dpl_lxd_client_key: ~/.config/dpl/client.key
    dpl_lxd_server_cert: ~/.config/dpl/hosts/vps2.crt
"""

import os

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

from ansible_collections.dpl.platform.plugins.plugin_utils.lxd_session import (
    SessionBroken,
    SessionClient,
    SessionUnavailable,
    UnsafeControlDir,
)

display = Display()

# The environment LXD gives an exec; session commands get the same.
BASE_ENVIRONMENT = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def _lxd():
    # Imported on first use: a task served by a session never needs the REST client,
    # and its import (http.client, ssl) would cost every task ~15 ms.
    from ansible_collections.dpl.platform.plugins.module_utils import lxd

    return lxd


class Connection(ConnectionBase):
    """Ansible connection to an LXD instance through :class:`LXDClient`."""

    transport = "dpl.platform.lxd"
    has_pipelining = True
    # LXD execs argument lists, but Ansible hands over shell command lines:
    # run them with /bin/sh -c, as every POSIX connection does.
    default_user = "root"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._client = None
        self._instance = None
        self._identity = None  # (uid, gid, home) of remote_user

    # -- connection set-up ---------------------------------------------------

    def _connect(self):
        if self._connected:
            return self
        self._instance = self.get_option("remote_addr")
        display.vvv("ESTABLISH LXD CONNECTION TO %s ON %s"
                    % (self._instance, self.get_option("lxd_endpoint")), host=self._instance)
        self._connected = True
        return self

    def _lxd_settings(self):
        project = self.get_option("lxd_project")
        return dict(
            endpoint=self.get_option("lxd_endpoint"),
            client_cert=self.get_option("client_cert"),
            client_key=self.get_option("client_key"),
            server_cert=self.get_option("server_cert"),
            project=None if project == "default" else project,
            timeout=self.get_option("timeout"),
        )

    @property
    def client(self):
        """The REST client, made on first use."""
        if self._client is None:
            lxd = _lxd()
            try:
                self._client = lxd.LXDClient(**self._lxd_settings())
            except lxd.LXDError as exc:
                raise AnsibleConnectionFailure("cannot use LXD at %s: %s"
                                               % (self.get_option("lxd_endpoint"), exc)) from None
        return self._client

    def _describe_failure(self, exc):
        """Turn an LXD error into a sentence that says what is wrong and what to do.

        The happy path makes no request to check the instance first (that would cost a
        database read per task); only when something failed is the instance looked at,
        to tell a missing or stopped instance from any other error.
        """
        lxd = _lxd()
        where = self.client.describe()
        if isinstance(exc, lxd.LXDUnreachable):
            return "%s" % exc
        try:
            self.client.require_running(self._instance)
        except lxd.LXDNotFound:
            return ("LXD instance %r does not exist on %s: create it (playbooks/container.yml) "
                    "or fix the inventory's instance name" % (self._instance, where))
        except lxd.LXDError as state_error:
            return "%s (on %s)" % (state_error, where)
        return "LXD instance %r on %s: %s" % (self._instance, where, exc)

    def _user_identity(self):
        """Map remote_user to (uid, gid, home) by reading the instance's passwd file."""
        if self._identity is not None:
            return self._identity
        user = self.get_option("remote_user") or "root"
        if user == "root":
            self._identity = (0, 0, "/root")
            return self._identity
        try:
            passwd = self.client.pull_file(self._instance, "/etc/passwd")
        except _lxd().LXDError as exc:
            raise AnsibleConnectionFailure(self._describe_failure(exc)) from None
        for line in to_text(passwd, errors="surrogate_or_strict").splitlines():
            fields = line.split(":")
            if len(fields) >= 7 and fields[0] == user:
                self._identity = (int(fields[2]), int(fields[3]), fields[5] or "/")
                return self._identity
        raise AnsibleConnectionFailure(
            "user %r does not exist in LXD instance %r (remote_user / ansible_user)"
            % (user, self._instance)
        )

    # -- the connection API --------------------------------------------------

    def exec_command(self, cmd, in_data=None, sudoable=True):
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        uid, gid, home = self._user_identity()
        user = self.get_option("remote_user") or "root"
        # Ansible hands over shell command lines: run them with /bin/sh -c, as every POSIX
        # connection does.
        argv = ["/bin/sh", "-c", to_text(cmd, errors="surrogate_or_strict")]
        environment = dict(BASE_ENVIRONMENT, HOME=home, USER=user, LOGNAME=user)
        display.vvv("EXEC %s" % cmd, host=self._instance)
        persist = self.get_option("persist_timeout")
        if persist > 0:
            session = SessionClient(self.get_option("control_dir"),
                                    dict(self._lxd_settings(), instance=self._instance, uid=uid),
                                    idle=persist)
            try:
                return session.run(argv, environment, home, uid, gid, in_data)
            except SessionUnavailable as exc:
                display.vvv("no session (%s): one LXD exec for this command" % exc, host=self._instance)
            except (SessionBroken, UnsafeControlDir) as exc:
                # Broken: the command may have run, and running it again could repeat a
                # deploy. Unsafe: the operator must fix the directory (as with ssh's).
                raise AnsibleConnectionFailure("LXD instance %r: %s" % (self._instance, exc)) from None
        lxd = _lxd()
        try:
            return self.client.execute(self._instance, argv, stdin=in_data, environment=environment,
                                       user=uid, group=gid, cwd=home)
        except lxd.LXDError as exc:
            raise AnsibleConnectionFailure(self._describe_failure(exc)) from None

    def put_file(self, in_path, out_path):
        super().put_file(in_path, out_path)
        display.vvv("PUT %s TO %s" % (in_path, out_path), host=self._instance)
        uid, gid, dummy = self._user_identity()
        b_in_path = to_bytes(in_path, errors="surrogate_or_strict")
        if not os.path.isfile(b_in_path):
            raise AnsibleFileNotFound("file to transfer does not exist: %s" % in_path)
        # Keep the source's permission bits, as a copy would; modules set modes afterwards.
        mode = os.stat(b_in_path).st_mode & 0o7777
        try:
            with open(b_in_path, "rb") as source:
                self.client.push_file(self._instance, out_path, source, uid=uid, gid=gid, mode=mode)
        except _lxd().LXDError as exc:
            raise AnsibleError("failed to transfer %s to %s in LXD instance %r: %s"
                               % (in_path, out_path, self._instance, self._describe_failure(exc))) from None

    def fetch_file(self, in_path, out_path):
        super().fetch_file(in_path, out_path)
        display.vvv("FETCH %s TO %s" % (in_path, out_path), host=self._instance)
        b_out_path = to_bytes(out_path, errors="surrogate_or_strict")
        partial = b_out_path + b".dpl-partial"
        lxd = _lxd()
        try:
            with open(partial, "wb") as sink:
                self.client.pull_file(self._instance, in_path, sink=sink)
            os.replace(partial, b_out_path)
        except lxd.LXDNotFound as exc:
            raise AnsibleFileNotFound(self._describe_failure(exc)) from None
        except (lxd.LXDError, OSError) as exc:
            raise AnsibleError("failed to fetch %s from LXD instance %r to %s: %s"
                               % (in_path, self._instance, out_path, exc)) from None
        finally:
            if os.path.exists(partial):
                os.unlink(partial)

    def reset(self):
        self.close()

    def close(self):
        if self._client is not None:
            self._client.close()
        self._client = None
        self._identity = None
        self._connected = False
