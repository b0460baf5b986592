#!/usr/bin/python
# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: nginx_vhost
short_description: One app domain's nginx vhost, tested before it replaces the old one
version_added: 0.1.0
description:
  - Writes C(<domain>.conf) in O(sites_available) and enables it with a symlink of the same
    name in O(sites_enabled), which the main nginx configuration includes, so nginx loads it
    with no edit to any other file.
  - The vhost answers plain HTTP on port 80 with a 301 redirect to C(https://<domain>), and
    proxies HTTPS on port 443 to O(upstream_ipv4):O(upstream_port) (the app's container)
    with the C(Host), C(X-Real-IP), C(X-Forwarded-For), C(X-Forwarded-Proto),
    C(X-Forwarded-Host) and websocket C(Upgrade)/C(Connection) headers.
  - Every value is checked by DPL's validation layer before anything is rendered, and before
    any file is touched; a hostile domain (newline, C(;), braces, C($), spaces, C(..)) is
    refused with the rule it breaks.
  - Safe reload. A new or changed vhost is tested with C(nginx -t) first on its own, then
    together with the whole configuration (a throwaway copy of the main configuration whose
    include of O(sites_enabled) points at a staging folder holding the other enabled vhosts
    and the new file). Only when both pass does the file replace the old one, and nginx is
    reloaded. Otherwise the old file stays, nginx is not reloaded, and the task fails quoting
    nginx's error. A broken vhost of one app therefore never takes the others down.
  - O(state=absent) removes the file and its symlink after testing that the remaining
    configuration is valid, then reloads nginx.
  - Never overwrites or deletes a file it did not write. A C(<domain>.conf) that does not
    start with DPL's marker line (an operator's own server block), or a file or link in
    O(sites_enabled) that is not DPL's link to it, fails the task naming the file.
  - Changes of concurrent runs on one host are serialised with a lock file.
  - The vhost uses the variable C($dpl_connection_upgrade) that the base configuration of
    the role P(dpl.platform.nginx_edge#role) defines; apply that role first.
author: DPL maintainers (@dpl-platform)
options:
  domain:
    description:
      - The app domain (a lower-case fully qualified name). Also the file name,
        C(<domain>.conf).
    type: str
    required: true
  state:
    description: Whether the vhost exists and is enabled.
    type: str
    choices: [present, absent]
    default: present
  upstream_ipv4:
    description: IPv4 address of the app's container. Required when O(state=present).
    type: str
  upstream_port:
    description: TCP port the app listens on in its container. Required when O(state=present).
    type: int
  upstream_backup_ports:
    description:
      - Ports of the same container that get a request only when O(upstream_port) refuses or
        fails it (nginx C(backup) servers). For the other slot of an app deployed without
        downtime, so a request that meets the old slot as it stops is passed on.
    type: list
    elements: int
    default: []
  upstream_network:
    description:
      - When set, O(upstream_ipv4) must be a host address inside this network (CIDR), such as
        the containers' bridge C(10.210.0.0/24).
    type: str
  tls_certificate:
    description:
      - Certificate (PEM, full chain) nginx presents for the domain, for example the one
        M(dpl.platform.tls_cert) made, or a Cloudflare Origin CA certificate. Required when
        O(state=present).
    type: path
  tls_certificate_key:
    description: Private key of O(tls_certificate). Required when O(state=present).
    type: path
  client_max_body_size:
    description: Largest request body accepted (nginx size, such as V(10m); V(0) for no limit).
    type: str
    default: 10m
  proxy_connect_timeout:
    description: Seconds to wait for a connection to the app (1-75).
    type: int
    default: 5
  proxy_send_timeout:
    description: Seconds between two writes to the app before the request fails.
    type: int
    default: 60
  proxy_read_timeout:
    description: Seconds between two reads from the app (idle websockets close after this).
    type: int
    default: 60
  listen_ipv6:
    description:
      - Listen on IPv6 (C([::]:80), C([::]:443)) as well as IPv4. Keep it the same as the
        role's C(nginx_edge_listen_ipv6), so the default servers cover the same addresses.
    type: bool
    default: true
  sites_available:
    description: Folder the vhost file is written to.
    type: path
    default: /etc/nginx/sites-available
  sites_enabled:
    description: Folder of the symlinks nginx loads; O(nginx_conf) must include it.
    type: path
    default: /etc/nginx/sites-enabled
  nginx_conf:
    description: The main nginx configuration, tested with the new vhost and reloaded.
    type: path
    default: /etc/nginx/nginx.conf
  reload:
    description:
      - Reload nginx after a change. Without it the change is tested and installed, and
        nginx loads it at its next reload or start.
    type: bool
    default: true
  reload_timeout:
    description: Seconds to wait for nginx to start new worker processes after the reload.
    type: int
    default: 10
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Check mode reports the change and its diff without testing it with nginx.
  diff_mode:
    support: full
  platform:
    platforms: posix
notes:
  - Runs C(nginx) as an argument list with C(LC_ALL=C); the host must have nginx installed.
seealso:
  - module: dpl.platform.tls_cert
  - module: dpl.platform.cloudflare_dns
"""

EXAMPLES = r"""
- name: Serve shop.example.com from its container
  dpl.platform.nginx_vhost:
    domain: shop.example.com
    upstream_ipv4: 10.210.0.23
    upstream_port: 3000
    upstream_network: 10.210.0.0/24
    tls_certificate: /etc/ssl/dpl/shop.example.com.crt
    tls_certificate_key: /etc/ssl/dpl/shop.example.com.key
    client_max_body_size: 50m
    proxy_read_timeout: 300

- name: Remove the vhost of an app that is gone
  dpl.platform.nginx_vhost:
    domain: old.example.com
    state: absent
"""

RETURN = r"""
path:
  description: The vhost file in O(sites_available).
  returned: always
  type: str
  sample: /etc/nginx/sites-available/shop.example.com.conf
link:
  description: The symlink in O(sites_enabled) that enables it.
  returned: always
  type: str
  sample: /etc/nginx/sites-enabled/shop.example.com.conf
reloaded:
  description: Whether nginx was reloaded by this task.
  returned: always
  type: bool
nginx_output:
  description: What C(nginx -t) said about the configuration with the change (warnings included).
  returned: when the change was tested
  type: str
"""

import contextlib
import fcntl
import os
import shutil
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dpl.platform.plugins.module_utils import nginx
from ansible_collections.dpl.platform.plugins.module_utils.validation import ValidationError

LOCK_FILE = "/run/lock/dpl-nginx-vhost.lock"
C_LOCALE = dict(LC_ALL="C", LANG="C")


def read_text(path):
    try:
        with open(path) as handle:
            return handle.read()
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def host_lock():
    path = LOCK_FILE if os.path.isdir(os.path.dirname(LOCK_FILE)) else \
        os.path.join(tempfile.gettempdir(), os.path.basename(LOCK_FILE))
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Vhost:
    """One app domain's vhost file and symlink, and the nginx that loads them."""

    def __init__(self, module, name):
        self.module = module
        self.params = module.params
        self.name = name
        self.path = os.path.join(self.params["sites_available"], name)
        self.link = os.path.join(self.params["sites_enabled"], name)
        self.nginx_bin = None

    # -- what is there now ---------------------------------------------------

    def current_text(self):
        return read_text(self.path)

    def enabled(self):
        return os.path.islink(self.link) and os.readlink(self.link) == self.path

    def link_exists(self):
        return os.path.lexists(self.link)

    def foreign(self, text):
        """(path, why) when a file of this name is not one DPL wrote, else None."""
        if text is not None and not text.startswith(nginx.MARKER + "\n"):
            return self.path, "it does not start with DPL's marker line"
        if self.link_exists() and not self.enabled():
            return self.link, "it is not DPL's link to %s" % self.path
        return None

    # -- testing ----------------------------------------------------------------

    def nginx(self):
        if self.nginx_bin is None:
            self.nginx_bin = self.module.get_bin_path(
                "nginx", required=True, opt_dirs=["/usr/sbin", "/usr/local/sbin"])
        return self.nginx_bin

    def nginx_test(self, conf, replacements):
        rc, out, err = self.module.run_command([self.nginx(), "-t", "-c", conf],
                                               environ_update=C_LOCALE)
        output = (err + out).strip()
        # Name the real files in what nginx says, not the throwaway copies.
        for temporary, real in replacements:
            output = output.replace(temporary, real)
        return rc == 0, output

    def test(self, new_text):
        """Test ``new_text`` on its own, then with the whole configuration.

        ``new_text`` None tests the configuration without this vhost (removal). Returns
        nginx's output, or fails the task quoting it.
        """
        params = self.params
        conf = params["nginx_conf"]
        conf_dir = os.path.dirname(conf)
        conf_text = read_text(conf)
        if conf_text is None:
            self.module.fail_json(msg="the main nginx configuration %s does not exist: install nginx "
                                      "(the role dpl.platform.nginx_edge does) or set nginx_conf" % conf)
        work = tempfile.mkdtemp(prefix="dpl-vhost-")
        staging = os.path.join(work, "sites-enabled")
        os.mkdir(staging)
        main_copy = None
        try:
            try:
                redirected = nginx.redirect_include(conf_text, conf_dir, params["sites_enabled"], staging)
            except LookupError:
                self.module.fail_json(
                    msg="%s does not include %s, so nginx would never load the vhosts there: add "
                        "'include %s/*;' to its http block, or set sites_enabled to the folder it "
                        "includes" % (conf, params["sites_enabled"], params["sites_enabled"]))
            if new_text is not None:
                alone = os.path.join(work, self.name)
                with open(alone, "w") as handle:
                    handle.write(new_text)
                alone_conf = os.path.join(work, "alone.conf")
                with open(alone_conf, "w") as handle:
                    handle.write(nginx.standalone_config(alone, os.path.join(work, "nginx.pid")))
                ok, output = self.nginx_test(alone_conf, [(alone, self.path), (alone_conf, self.path)])
                if not ok:
                    self.fail_test("the new vhost %s is not valid on its own" % self.path, output)
                os.rename(alone, os.path.join(staging, self.name))
            for entry in sorted(os.listdir(params["sites_enabled"])):
                if entry != self.name:
                    os.symlink(os.path.realpath(os.path.join(params["sites_enabled"], entry)),
                               os.path.join(staging, entry))
            # Beside the real main file, so that its relative includes resolve the same way.
            fd, main_copy = tempfile.mkstemp(prefix=".dpl-vhost-test-", suffix=".conf", dir=conf_dir)
            with os.fdopen(fd, "w") as handle:
                handle.write(redirected)
            ok, output = self.nginx_test(main_copy, [(staging, params["sites_enabled"]), (main_copy, conf)])
            if not ok:
                what = ("the configuration with the new vhost %s" % self.path if new_text is not None
                        else "the configuration without %s" % self.path)
                self.fail_test("%s is not valid" % what, output)
            if new_text is not None and 'conflicting server name "%s"' % params["domain"] in output:
                self.fail_test("another server block already answers for %s, so nginx would ignore "
                               "one of them; remove the other one first" % params["domain"], output)
            return output
        finally:
            if main_copy:
                os.unlink(main_copy)
            shutil.rmtree(work, ignore_errors=True)

    def fail_test(self, what, output):
        self.module.fail_json(
            msg="%s; nothing was changed and nginx was not reloaded. nginx -t said:\n%s"
                % (what, output or "(nothing)"), nginx_output=output, path=self.path, link=self.link,
            reloaded=False)

    # -- changing ---------------------------------------------------------------

    def install(self, text):
        directory = self.params["sites_available"]
        fd, temporary = tempfile.mkstemp(prefix=".%s." % self.name, dir=directory)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
            os.chmod(temporary, 0o644)
            os.rename(temporary, self.path)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
        if not self.enabled():
            temporary = os.path.join(self.params["sites_enabled"], ".%s.link" % self.name)
            if os.path.lexists(temporary):
                os.unlink(temporary)
            os.symlink(self.path, temporary)
            os.rename(temporary, self.link)

    def remove(self):
        if self.link_exists():
            os.unlink(self.link)
        if os.path.exists(self.path):
            os.unlink(self.path)

    # -- reloading --------------------------------------------------------------

    def master_pid(self):
        """The running nginx master's pid (from the pid file the main configuration names), or None."""
        pid_path = self.pid_file()
        try:
            with open(pid_path) as handle:
                pid = int(handle.read().strip())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def pid_file(self):
        for line in (read_text(self.params["nginx_conf"]) or "").splitlines():
            words = line.split("#", 1)[0].strip().rstrip(";").split()
            if len(words) == 2 and words[0] == "pid":
                return words[1]
        return "/run/nginx.pid"

    @staticmethod
    def workers(master):
        children = set()
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open("/proc/%s/stat" % entry) as handle:
                        fields = handle.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == master and fields[0] != "Z":
                    children.add(int(entry))
        return children

    def reload(self):
        master = self.master_pid()
        if master is None:
            self.module.fail_json(
                msg="the vhost %s is valid and in place, but nginx is not running (no live process in "
                    "%s), so it was not reloaded: start nginx (the role dpl.platform.nginx_edge does)"
                    % (self.path, self.pid_file()), path=self.path, link=self.link, changed=True,
                    reloaded=False)
        before = self.workers(master)
        rc, out, err = self.module.run_command([self.nginx(), "-c", self.params["nginx_conf"], "-s", "reload"],
                                               environ_update=C_LOCALE)
        if rc != 0:
            self.module.fail_json(
                msg="the vhost %s is valid and in place, but reloading nginx failed: %s"
                    % (self.path, (err or out).strip()), rc=rc, stdout=out, stderr=err,
                path=self.path, link=self.link, changed=True, reloaded=False)
        # nginx reloads asynchronously: wait until the master runs workers of the new configuration.
        deadline = time.monotonic() + self.params["reload_timeout"]
        while not (self.workers(master) - before):
            if time.monotonic() >= deadline:
                self.module.warn("nginx did not start new worker processes within %ss of the reload; "
                                 "look at its error log" % self.params["reload_timeout"])
                break
            time.sleep(0.05)
        return True


def main():
    module = AnsibleModule(
        argument_spec=dict(
            domain=dict(type="str", required=True),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            upstream_ipv4=dict(type="str"),
            upstream_port=dict(type="int"),
            upstream_backup_ports=dict(type="list", elements="int", default=[]),
            upstream_network=dict(type="str"),
            tls_certificate=dict(type="path"),
            tls_certificate_key=dict(type="path", no_log=False),
            client_max_body_size=dict(type="str", default="10m"),
            proxy_connect_timeout=dict(type="int", default=5),
            proxy_send_timeout=dict(type="int", default=60),
            proxy_read_timeout=dict(type="int", default=60),
            listen_ipv6=dict(type="bool", default=True),
            sites_available=dict(type="path", default="/etc/nginx/sites-available"),
            sites_enabled=dict(type="path", default="/etc/nginx/sites-enabled"),
            nginx_conf=dict(type="path", default="/etc/nginx/nginx.conf"),
            reload=dict(type="bool", default=True),
            reload_timeout=dict(type="int", default=10),
        ),
        required_if=[("state", "present",
                      ("upstream_ipv4", "upstream_port", "tls_certificate", "tls_certificate_key"))],
        supports_check_mode=True,
    )
    params = module.params

    # Everything is validated before any file or folder is looked at.
    try:
        name = nginx.file_name(params["domain"])
        text = None
        if params["state"] == "present":
            text = nginx.render_vhost(
                params["domain"], params["upstream_ipv4"], params["upstream_port"],
                params["tls_certificate"], params["tls_certificate_key"],
                client_max_body_size=params["client_max_body_size"],
                proxy_connect_timeout=params["proxy_connect_timeout"],
                proxy_send_timeout=params["proxy_send_timeout"],
                proxy_read_timeout=params["proxy_read_timeout"],
                listen_ipv6=params["listen_ipv6"],
                upstream_network=params["upstream_network"],
                upstream_backup_ports=params["upstream_backup_ports"])
    except ValidationError as exc:
        module.fail_json(msg=str(exc))
    for option in ("sites_available", "sites_enabled"):
        if not os.path.isdir(params[option]):
            module.fail_json(msg="%s %s is not a folder: install nginx (the role dpl.platform.nginx_edge "
                                 "does) or set %s" % (option, params[option], option))
    if os.path.realpath(params["sites_available"]) == os.path.realpath(params["sites_enabled"]):
        module.fail_json(msg="sites_available and sites_enabled must be different folders")
    if not 1 <= params["reload_timeout"] <= 600:
        module.fail_json(msg="reload_timeout must be 1 to 600 seconds, not %s" % params["reload_timeout"])

    vhost = Vhost(module, name)
    result = dict(changed=False, path=vhost.path, link=vhost.link, reloaded=False)
    before = vhost.current_text()
    foreign = vhost.foreign(before)
    if foreign:
        module.fail_json(msg="%s was not written by DPL (%s): DPL never overwrites or deletes an operator's "
                             "file; move it away (or import its server block) and run again" % foreign,
                         **result)
    if params["state"] == "present":
        changed = before != text or not vhost.enabled()
        diff = dict(before=before or "", after=text,
                    before_header=vhost.path + ("" if vhost.enabled() else " (not enabled)"),
                    after_header=vhost.path)
    else:
        changed = before is not None or vhost.link_exists()
        diff = dict(before=before or "", after="", before_header=vhost.path,
                    after_header=vhost.path + " (removed)")
    result["changed"] = changed
    if module._diff and changed:
        result["diff"] = diff
    if not changed or module.check_mode:
        module.exit_json(**result)

    with host_lock():
        result["nginx_output"] = vhost.test(text)
        if text is None:
            vhost.remove()
        else:
            vhost.install(text)
        if params["reload"]:
            result["reloaded"] = vhost.reload()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
