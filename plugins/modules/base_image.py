#!/usr/bin/python
# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: base_image
short_description: Build DPL's container base image with debootstrap and keep it in LXD
version_added: 0.1.0
description:
  - Makes sure the LXD image alias O(name) points at an image built from this recipe, a
    minimal Debian with Python (for Ansible), git and the ssh client (private repositories),
    systemd, udev and the extra packages (Node.js and npm by default).
  - The recipe's hash is stored as the image property C(dpl.recipe). Nothing happens when the
    alias already points at an image of the same recipe; a cached build of the recipe is
    imported without rebuilding; otherwise the image is built (about a minute) and cached in
    O(cache_dir), outside any checkout.
  - Building needs C(debootstrap), root, and access to the Debian mirror. The containers made
    from the image need no network at all.
  - The image maps the container's own name in C(/etc/hosts) and has no DNS resolver, so
    nothing in a container stalls on a name lookup it cannot make.
author: DPL maintainers (@dpl-platform)
options:
  name:
    description: Image alias to maintain.
    type: str
    default: dpl-base
  suite:
    description: Debian suite to bootstrap.
    type: str
    default: bookworm
  mirror:
    description: Debian mirror to bootstrap from.
    type: str
    default: http://deb.debian.org/debian
  init:
    description:
      - The container's init system, and what comes with it.
      - V(systemd) (DPL's default) adds C(systemd-sysv) and C(udev), and networking by
        systemd-networkd.
      - V(openrc) adds C(openrc) and C(sysvinit-core) (Debian's OpenRC, with the same
        C(openrc-run) scripts and C(supervise-daemon) as Alpine's), and networking by ifupdown
        and dhclient. DPL runs apps as OpenRC services there. It stands in for an Alpine image in
        the tests, which cannot download one.
    type: str
    choices: [systemd, openrc]
    default: systemd
  packages:
    description: Packages debootstrap installs into the minimal base, besides those O(init) adds.
    type: list
    elements: str
    default: [python3, git, openssh-client, ca-certificates, iproute2, procps]
  extra_packages:
    description:
      - Packages installed with apt inside the new root after debootstrap (apt resolves
        dependency cycles that debootstrap alone cannot, as npm's).
    type: list
    elements: str
    default: [nodejs, npm]
  cache_dir:
    description: Where built images are cached, one folder per recipe hash.
    type: path
    default: ~/.cache/dpl/images
  build_timeout:
    description: Seconds each build step, and the import into LXD, may take before the task fails.
    type: int
    default: 900
extends_documentation_fragment:
  - dpl.platform.lxd_api
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
notes:
  - Run it asynchronously (C(async)/C(poll)) to see progress while a build runs; each step is
    also written to C(build.log) in the recipe's cache folder.
"""

EXAMPLES = r"""
- name: Base image for app containers (built once, then cached)
  dpl.platform.base_image:
    name: dpl-base
  async: 1800
  poll: 10
"""

RETURN = r"""
fingerprint:
  description: Fingerprint of the image the alias points at.
  returned: success, not in check mode
  type: str
recipe:
  description: Hash of the recipe the image was built from.
  returned: always
  type: str
built:
  description: Whether the image was built by this task.
  returned: always
  type: bool
imported:
  description: Whether an image was imported into LXD by this task.
  returned: always
  type: bool
cache:
  description: The cached image tarball for this recipe.
  returned: always
  type: str
"""

import hashlib
import json
import os
import platform
import shutil
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dpl.platform.plugins.module_utils.lxd import LXDError, LXDNotFound
from ansible_collections.dpl.platform.plugins.module_utils.lxd_module import lxd_argument_spec, lxd_client

# Bump when the build steps below change in a way the hashed inputs do not show.
RECIPE_VERSION = 1

# Files written into the root filesystem. Part of the recipe hash.
ROOTFS_FILES = {
    # No resolver: containers have no DNS to reach, and an empty list fails lookups at once
    # instead of waiting 5 s for a server that cannot answer.
    "etc/resolv.conf": "# DPL containers resolve names from /etc/hosts only.\n",
    "etc/default/locale": "LANG=C.UTF-8\n",
}

# LXD renders these on create and copy, so /etc/hosts always knows the container's own name
# (git, sudo and others resolve it; without it each lookup stalls on DNS).
TEMPLATES = {
    "hostname.tpl": "{{ container.name }}\n",
    "hosts.tpl": "127.0.0.1 localhost\n127.0.1.1 {{ container.name }}\n"
                 "::1 localhost ip6-localhost ip6-loopback\n",
}

# What each init system adds: packages, files and links in the root filesystem (part of the
# recipe hash). Either way DHCP on the LXD nic: LXD's dnsmasq hands out the container's
# (fixed) address.
INITS = {
    "systemd": {
        "packages": ["systemd-sysv", "udev"],
        "files": {"etc/systemd/network/20-eth0.network": "[Match]\nName=eth0\n\n[Network]\nDHCP=ipv4\n"},
        "links": {
            "etc/systemd/system/multi-user.target.wants/systemd-networkd.service":
                "/lib/systemd/system/systemd-networkd.service",
            "etc/systemd/system/sockets.target.wants/systemd-networkd.socket":
                "/lib/systemd/system/systemd-networkd.socket",
            # binfmt_misc cannot be mounted in a container: the unit would only fail at every boot.
            "etc/systemd/system/systemd-binfmt.service": "/dev/null",
        },
    },
    "openrc": {
        "packages": ["sysvinit-core", "ifupdown", "isc-dhcp-client"],
        # With apt after debootstrap: openrc replaces sysv-rc, a swap debootstrap cannot make.
        "apt_packages": ["openrc"],
        "files": {"etc/network/interfaces": "auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp\n",
                  # A container has no terminals to run gettys on: init only runs OpenRC. LXD
                  # stops a sysvinit container with SIGPWR (powerfail) and reboots it with
                  # SIGINT (ctrlaltdel); halt and reboot then end the container's init.
                  "etc/inittab": "id:3:initdefault:\nsi::sysinit:/sbin/openrc sysinit\n"
                                 "rc::bootwait:/sbin/openrc boot\nl3:3:wait:/sbin/openrc default\n"
                                 "l0:0:wait:/sbin/openrc shutdown\nh0:0:wait:/sbin/halt -f\n"
                                 "l6:6:wait:/sbin/openrc reboot\nr6:6:wait:/sbin/reboot -f\n"
                                 "pf::powerfail:/sbin/init 0\nca::ctrlaltdel:/sbin/init 6\n"},
        "links": {"etc/runlevels/default/networking": "/etc/init.d/networking"},
    },
}

ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64"}


def packages(params):
    """What debootstrap installs: the given packages and those of the init system."""
    return params["packages"] + [name for name in INITS[params["init"]]["packages"] if name not in params["packages"]]


def apt_packages(params):
    """What apt installs after debootstrap: the init system's own, then the extra packages."""
    return INITS[params["init"]].get("apt_packages", []) + params["extra_packages"]


def rootfs_files(params):
    return dict(ROOTFS_FILES, **INITS[params["init"]]["files"])


def recipe_hash(params):
    recipe = dict(
        version=RECIPE_VERSION,
        suite=params["suite"],
        mirror=params["mirror"],
        packages=sorted(packages(params)),
        extra_packages=sorted(apt_packages(params)),
        files=rootfs_files(params),
        templates=TEMPLATES,
        units=INITS[params["init"]]["links"],
    )
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


class ImageBuilder:
    """Builds the image tarball for one recipe into ``cache_dir/<recipe>/image.tar``."""

    def __init__(self, module, recipe, folder):
        self.module = module
        self.params = module.params
        self.recipe = recipe
        self.folder = folder
        self.work = folder + ".build"
        self.rootfs = os.path.join(self.work, "rootfs")
        self.log_path = os.path.join(os.path.dirname(folder), "build-%s.log" % recipe)

    def log(self, message):
        with open(self.log_path, "a") as log:
            log.write("%s %s\n" % (time.strftime("%H:%M:%S"), message))

    def run(self, step, args):
        self.log("%s: %s" % (step, " ".join(args)))
        # coreutils' timeout bounds every step: a stalled mirror fails the build, not the host.
        rc, out, err = self.module.run_command(
            ["timeout", str(self.params["build_timeout"])] + args,
            environ_update={"LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"})
        with open(self.log_path, "a") as log:
            log.write(out[-20000:])
            log.write(err[-20000:])
        if rc != 0:
            self.module.fail_json(
                msg="building the base image failed at step '%s' (%s); see %s. %s"
                    % (step, "timed out" if rc == 124 else "rc=%s" % rc, self.log_path, _hint(step)),
                rc=rc, stdout=out[-4000:], stderr=err[-4000:], step=step)
        return out

    def build(self):
        if os.path.exists(self.work):
            shutil.rmtree(self.work)
        os.makedirs(self.work)
        open(self.log_path, "w").close()
        debootstrap = self.module.get_bin_path("debootstrap")
        if not debootstrap:
            self.module.fail_json(msg="debootstrap is not installed: apt-get install debootstrap "
                                      "(playbooks/host.yml installs it)")
        self.run("debootstrap", [
            debootstrap, "--variant=minbase", "--include=" + ",".join(packages(self.params)),
            self.params["suite"], self.rootfs, self.params["mirror"],
        ])
        if apt_packages(self.params):
            self.install_extra_packages()
        self.configure()
        self.write_metadata()
        tarball = os.path.join(self.work, "image.tar")
        self.run("pack", ["tar", "--numeric-owner", "-C", self.work, "-cf", tarball,
                          "metadata.yaml", "templates", "rootfs"])
        shutil.rmtree(self.rootfs)
        if os.path.exists(self.folder):
            shutil.rmtree(self.folder)
        os.rename(self.work, self.folder)
        self.log("done")

    def install_extra_packages(self):
        # No service may start inside the build root.
        policy = os.path.join(self.rootfs, "usr/sbin/policy-rc.d")
        with open(policy, "w") as handle:
            handle.write("#!/bin/sh\nexit 101\n")
        os.chmod(policy, 0o755)
        proc = os.path.join(self.rootfs, "proc")
        self.run("mount /proc", ["mount", "-t", "proc", "proc", proc])
        try:
            self.run("apt-get install", ["chroot", self.rootfs, "apt-get", "install", "-y", "-q",
                                         "--no-install-recommends"] + apt_packages(self.params))
            self.run("apt-get clean", ["chroot", self.rootfs, "apt-get", "clean"])
        finally:
            self.module.run_command(["umount", proc])
            os.unlink(policy)

    def configure(self):
        for relative, content in rootfs_files(self.params).items():
            path = os.path.join(self.rootfs, relative)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if os.path.islink(path):
                os.unlink(path)
            with open(path, "w") as handle:
                handle.write(content)
        for link, target in INITS[self.params["init"]]["links"].items():
            path = os.path.join(self.rootfs, link)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if os.path.lexists(path):
                os.unlink(path)
            os.symlink(target, path)
        # Package lists are useless offline and the containers that do have network fetch
        # fresh ones; dropping them saves ~50 MB per image.
        lists = os.path.join(self.rootfs, "var/lib/apt/lists")
        for entry in os.listdir(lists):
            if entry not in ("lock", "partial", "auxfiles"):
                os.unlink(os.path.join(lists, entry))

    def write_metadata(self):
        templates = os.path.join(self.work, "templates")
        os.makedirs(templates)
        for name, content in TEMPLATES.items():
            with open(os.path.join(templates, name), "w") as handle:
                handle.write(content)
        machine = platform.machine()
        metadata = {
            "architecture": machine,
            "creation_date": int(time.time()),
            "properties": {
                "description": "DPL base: Debian %s, python3, git, %s"
                               % (self.params["suite"], ", ".join(self.params["extra_packages"])),
                "os": "debian",
                "release": self.params["suite"],
                "architecture": ARCHITECTURES.get(machine, machine),
                "dpl.recipe": self.recipe,
            },
            "templates": {
                "/etc/hostname": {"when": ["create", "copy"], "template": "hostname.tpl"},
                "/etc/hosts": {"when": ["create", "copy"], "template": "hosts.tpl"},
            },
        }
        # JSON is valid YAML, and needs no YAML library on the build side.
        with open(os.path.join(self.work, "metadata.yaml"), "w") as handle:
            json.dump(metadata, handle, indent=2)


def _hint(step):
    return {
        "debootstrap": "Is the Debian mirror reachable from this host?",
        "apt-get install": "Is the Debian mirror reachable, and do the extra packages exist in the suite?",
        "mount /proc": "Building needs root.",
    }.get(step, "")


def current_image(client, alias):
    """Return (fingerprint, recipe) of the image ``alias`` points at, or (None, None)."""
    try:
        target = client.get("/1.0/images/aliases/%s" % alias)["target"]
        image = client.get("/1.0/images/%s" % target)
    except LXDNotFound:
        return None, None
    return target, (image.get("properties") or {}).get("dpl.recipe")


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def import_image(client, tarball, timeout):
    """Import a unified image tarball; return its fingerprint.

    LXD names a unified image by the sha256 of its tarball, so an image already imported
    (say, before its alias was removed) is found instead of uploaded again.
    """
    fingerprint = file_sha256(tarball)
    if client.exists("/1.0/images/%s" % fingerprint):
        return fingerprint
    with open(tarball, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        status, dummy, body = client.raw_request(
            "POST", "/1.0/images", body=handle,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            timeout=timeout)
    envelope = json.loads(body.decode() or "{}")
    if status >= 400 or envelope.get("type") == "error":
        raise LXDError("image import refused: %s" % envelope.get("error", "HTTP %s" % status), status)
    meta = client.wait(envelope["operation"], timeout)
    return (meta.get("metadata") or {})["fingerprint"]


def point_alias(client, alias, fingerprint, old_fingerprint):
    if old_fingerprint is None:
        client.request("POST", "/1.0/images/aliases",
                       json_body={"name": alias, "target": fingerprint,
                                  "description": "DPL base image"})
    else:
        client.request("PUT", "/1.0/images/aliases/%s" % alias,
                       json_body={"target": fingerprint, "description": "DPL base image"})
        if old_fingerprint != fingerprint:
            # Containers keep their own copy of the root filesystem: the old image can go.
            client.sync_or_wait("DELETE", "/1.0/images/%s" % old_fingerprint)


def main():
    argument_spec = lxd_argument_spec()
    argument_spec.update(
        name=dict(type="str", default="dpl-base"),
        suite=dict(type="str", default="bookworm"),
        mirror=dict(type="str", default="http://deb.debian.org/debian"),
        packages=dict(type="list", elements="str",
                      default=["python3", "git", "openssh-client", "ca-certificates", "iproute2", "procps"]),
        init=dict(type="str", choices=["systemd", "openrc"], default="systemd"),
        extra_packages=dict(type="list", elements="str", default=["nodejs", "npm"]),
        cache_dir=dict(type="path", default="~/.cache/dpl/images"),
        build_timeout=dict(type="int", default=900),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    recipe = recipe_hash(params)
    folder = os.path.join(params["cache_dir"], recipe)
    tarball = os.path.join(folder, "image.tar")
    result = dict(changed=False, recipe=recipe, built=False, imported=False, cache=tarball)

    client = lxd_client(module)
    try:
        old_fingerprint, old_recipe = current_image(client, params["name"])
        result["fingerprint"] = old_fingerprint
        if old_recipe == recipe:
            module.exit_json(**result)
        result["changed"] = True
        result["diff"] = dict(before={"alias": params["name"], "recipe": old_recipe},
                              after={"alias": params["name"], "recipe": recipe})
        if module.check_mode:
            module.exit_json(**result)
        if not os.path.exists(tarball):
            os.makedirs(params["cache_dir"], exist_ok=True)
            ImageBuilder(module, recipe, folder).build()
            result["built"] = True
        fingerprint = import_image(client, tarball, params["build_timeout"])
        point_alias(client, params["name"], fingerprint, old_fingerprint)
        result.update(imported=True, fingerprint=fingerprint)
    except LXDError as exc:
        module.fail_json(msg="LXD: %s" % exc, **result)
    finally:
        client.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
