#!/usr/bin/python
# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: tls_cert
short_description: A self-signed origin certificate, kept while it is valid
version_added: 0.1.0
description:
  - Makes a self-signed certificate and its private key with C(openssl), for an origin
    behind Cloudflare in "Full" SSL mode (which accepts a self-signed certificate).
  - The files are C(<directory>/<name>.crt) (mode 0644) and C(<directory>/<name>.key) (mode
    0600). DPL makes one certificate per app domain, so adding or removing an app never
    touches the certificate of another.
  - An existing certificate is kept as long as it matches (its subject alternative names are
    O(domains), it was made for the private key beside it, and its key type is O(key_type))
    and does not expire within O(renew_before_days). It is never regenerated otherwise, so
    what Cloudflare saw stays what it sees.
  - Runs C(openssl) as argument lists with C(LC_ALL=C) and a configuration file of its own,
    so the host's C(openssl.cnf) does not change the result.
author: DPL maintainers (@dpl-platform)
options:
  domains:
    description:
      - The names the certificate is for (subject alternative names); the first one is also
        its common name. Required when O(state=present).
    type: list
    elements: str
  name:
    description: Base name of the two files. Defaults to the first of O(domains).
    type: str
  directory:
    description: Folder of the certificate and key; made (mode 0700) when missing.
    type: path
    default: /etc/ssl/dpl
  days:
    description: Validity of a new certificate, in days.
    type: int
    default: 3650
  renew_before_days:
    description:
      - A certificate that expires within this many days is replaced. V(0) replaces it only
        once it has expired.
    type: int
    default: 30
  key_type:
    description: Key of a new certificate, V(ec) (P-256) or V(rsa) (2048 bits).
    type: str
    choices: [ec, rsa]
    default: ec
  force:
    description: Replace the certificate and key even when they are still valid.
    type: bool
    default: false
  state:
    description: V(absent) removes both files.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff shows the certificate's names, expiry and fingerprint, never the key.
  platform:
    platforms: posix
notes:
  - To serve a Cloudflare Origin CA certificate instead, do not use this module; put the
    certificate and key somewhere else and point M(dpl.platform.nginx_vhost) at them.
seealso:
  - module: dpl.platform.nginx_vhost
"""

EXAMPLES = r"""
- name: Origin certificate of shop.example.com
  dpl.platform.tls_cert:
    domains: [shop.example.com]
  register: cert

- name: One certificate for two names, renewed 60 days before it expires
  dpl.platform.tls_cert:
    name: blog
    domains: [blog.example.com, www.blog.example.com]
    renew_before_days: 60

- name: Remove the certificate of an app that is gone
  dpl.platform.tls_cert:
    name: old.example.com
    state: absent
"""

RETURN = r"""
certificate:
  description: Path of the certificate.
  returned: always
  type: str
  sample: /etc/ssl/dpl/shop.example.com.crt
private_key:
  description: Path of the private key.
  returned: always
  type: str
  sample: /etc/ssl/dpl/shop.example.com.key
generated:
  description: Whether a new certificate and key were made (or, in check mode, would be).
  returned: always
  type: bool
reason:
  description:
    - Why a new certificate was made, such as V(missing), V(expiring), V(names changed),
      V(key does not match), V(key type changed), V(unreadable) or V(forced).
  returned: when generated
  type: str
not_after:
  description: When the certificate expires (UTC, ISO 8601).
  returned: when state is present and not in check mode, or the certificate was kept
  type: str
  sample: "2036-01-01T12:00:00Z"
fingerprint_sha256:
  description: SHA-256 fingerprint of the certificate, colon-separated hex.
  returned: when state is present and not in check mode, or the certificate was kept
  type: str
domains:
  description: The certificate's subject alternative names.
  returned: when state is present and not in check mode, or the certificate was kept
  type: list
  elements: str
"""

import base64
import calendar
import os
import shutil
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dpl.platform.plugins.module_utils import validation
from ansible_collections.dpl.platform.plugins.module_utils.validation import ValidationError

C_LOCALE = dict(LC_ALL="C", LANG="C")
MONTHS = {name: index for index, name in enumerate(
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1)}
# DER encodings of the public key algorithm identifiers (id-ecPublicKey, rsaEncryption).
KEY_OIDS = {"ec": bytes.fromhex("06072a8648ce3d0201"), "rsa": bytes.fromhex("06092a864886f70d010101")}


def parse_openssl_date(text):
    """Seconds since the epoch of an OpenSSL date such as ``Dec  8 06:00:36 2026 GMT``."""
    month, day, clock, year, zone = text.split()
    if zone != "GMT" or month not in MONTHS:
        raise ValueError(text)
    hour, minute, second = (int(part) for part in clock.split(":"))
    return calendar.timegm((int(year), MONTHS[month], int(day), hour, minute, second, 0, 0, 0))


def parse_x509_output(text):
    """Expiry, fingerprint, names and public key from ``openssl x509 -noout -enddate
    -fingerprint -sha256 -ext subjectAltName -pubkey``."""
    info = dict(domains=[], public_key=None, not_after=None, fingerprint_sha256=None)
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("notAfter="):
            info["not_after"] = parse_openssl_date(line.split("=", 1)[1])
        elif line.lower().startswith("sha256 fingerprint="):
            info["fingerprint_sha256"] = line.split("=", 1)[1].strip()
        elif line.strip().startswith("X509v3 Subject Alternative Name") and index + 1 < len(lines):
            info["domains"] = [part.strip()[4:] for part in lines[index + 1].split(",")
                               if part.strip().startswith("DNS:")]
    if "-----BEGIN PUBLIC KEY-----" in text:
        start = text.index("-----BEGIN PUBLIC KEY-----")
        end = text.index("-----END PUBLIC KEY-----", start) + len("-----END PUBLIC KEY-----")
        info["public_key"] = text[start:end]
    return info


def key_type_of(public_key_pem):
    body = "".join(line for line in public_key_pem.splitlines() if not line.startswith("-----"))
    der = base64.b64decode(body)
    for key_type, oid in KEY_OIDS.items():
        if oid in der[:32]:
            return key_type
    return "other"


def iso(timestamp):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def openssl_config(domains, key_type):
    """The configuration of ``openssl req``: a leaf certificate for a TLS server."""
    usage = "digitalSignature" if key_type == "ec" else "digitalSignature,keyEncipherment"
    return (
        "# Written by dpl.platform.tls_cert for one openssl req run.\n"
        "[req]\n"
        "distinguished_name = dn\n"
        "x509_extensions = ext\n"
        "prompt = no\n"
        "[dn]\n"
        "CN = %s\n"
        "[ext]\n"
        "subjectAltName = %s\n"
        "basicConstraints = critical,CA:FALSE\n"
        "keyUsage = critical,%s\n"
        "extendedKeyUsage = serverAuth\n"
        "subjectKeyIdentifier = hash\n"
    ) % (domains[0], ",".join("DNS:" + domain for domain in domains), usage)


class Certificate:
    def __init__(self, module, cert_path, key_path):
        self.module = module
        self.params = module.params
        self.cert_path = cert_path
        self.key_path = key_path
        self.openssl = module.get_bin_path("openssl", required=True)

    def run(self, args, umask=None):
        return self.module.run_command([self.openssl] + args, environ_update=C_LOCALE, umask=umask)

    def inspect(self):
        """What the certificate on disk is, or None when it cannot be read."""
        if not os.path.exists(self.cert_path):
            return None
        rc, out, err = self.run(["x509", "-in", self.cert_path, "-noout", "-enddate", "-fingerprint",
                                 "-sha256", "-ext", "subjectAltName", "-pubkey"])
        if rc != 0:
            return dict(unreadable=(err or out).strip())
        try:
            info = parse_x509_output(out)
        except ValueError:
            return dict(unreadable="unexpected openssl output")
        if not info["public_key"] or info["not_after"] is None:
            return dict(unreadable="unexpected openssl output")
        return info

    def key_public(self):
        if not os.path.exists(self.key_path):
            return None
        rc, out, dummy = self.run(["pkey", "-in", self.key_path, "-pubout"])
        return out.strip() if rc == 0 else None

    def why_replace(self, info, domains):
        """Why the certificate on disk must be replaced, or None to keep it."""
        params = self.params
        if info is None:
            return "missing"
        if "unreadable" in info:
            return "unreadable"
        if params["force"]:
            return "forced"
        if sorted(info["domains"]) != sorted(domains):
            return "names changed"
        if self.key_public() != info["public_key"].strip():
            return "key does not match"
        if key_type_of(info["public_key"]) != params["key_type"]:
            return "key type changed"
        if info["not_after"] - time.time() <= params["renew_before_days"] * 86400:
            return "expiring" if info["not_after"] > time.time() else "expired"
        return None

    def generate(self, domains):
        params = self.params
        directory = os.path.dirname(self.cert_path)
        work = tempfile.mkdtemp(prefix=".dpl-tls-", dir=directory)
        try:
            config = os.path.join(work, "openssl.cnf")
            with open(config, "w") as handle:
                handle.write(openssl_config(domains, params["key_type"]))
            new_cert, new_key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
            newkey = (["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"] if params["key_type"] == "ec"
                      else ["-newkey", "rsa:2048"])
            # umask 077: the key is never readable by others, not even for a moment.
            rc, out, err = self.run(["req", "-x509", "-config", config] + newkey + [
                "-nodes", "-sha256", "-days", str(params["days"]), "-keyout", new_key,
                "-out", new_cert], umask=0o077)
            if rc != 0:
                self.module.fail_json(msg="openssl could not make the certificate for %s: %s"
                                          % (", ".join(domains), (err or out).strip()),
                                      rc=rc, stdout=out, stderr=err)
            os.chmod(new_key, 0o600)
            os.chmod(new_cert, 0o644)
            # The key first: the certificate that names it never appears before it.
            os.rename(new_key, self.key_path)
            os.rename(new_cert, self.cert_path)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def describe(info):
    if info is None:
        return ""
    if "unreadable" in info:
        return "unreadable certificate: %s\n" % info["unreadable"]
    return "domains: %s\nnot_after: %s\nfingerprint_sha256: %s\n" % (
        ", ".join(info["domains"]), iso(info["not_after"]), info["fingerprint_sha256"])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            domains=dict(type="list", elements="str"),
            name=dict(type="str"),
            directory=dict(type="path", default="/etc/ssl/dpl"),
            days=dict(type="int", default=3650),
            renew_before_days=dict(type="int", default=30),
            key_type=dict(type="str", default="ec", choices=["ec", "rsa"]),
            force=dict(type="bool", default=False),
            state=dict(type="str", default="present", choices=["present", "absent"]),
        ),
        required_if=[("state", "present", ("domains",)), ("state", "absent", ("domains", "name"), True)],
        supports_check_mode=True,
    )
    params = module.params
    try:
        # This module also makes the certificate of nginx's default server (default.invalid).
        domains = validation.domains(params["domains"], default_certificate=True) \
            if params["domains"] is not None else []
        if params["state"] == "present" and not domains:
            raise ValidationError("domains", domains, "must name at least one domain")
        name = params["name"] if params["name"] is not None else domains[0]
        try:
            validation.domain(name, "name", default_certificate=True)
        except ValidationError:
            validation.name(name, "name")
        validation.count(params["days"], "days", 1, 36500)
        validation.count(params["renew_before_days"], "renew_before_days", 0, 36500)
    except ValidationError as exc:
        module.fail_json(msg=str(exc))
    if params["state"] == "present" and params["renew_before_days"] >= params["days"]:
        module.fail_json(msg="renew_before_days (%d) must be less than days (%d), or every run would make "
                             "a new certificate" % (params["renew_before_days"], params["days"]))

    directory = params["directory"]
    cert_path = os.path.join(directory, name + ".crt")
    key_path = os.path.join(directory, name + ".key")
    result = dict(changed=False, certificate=cert_path, private_key=key_path, generated=False)

    if params["state"] == "absent":
        present = [path for path in (cert_path, key_path) if os.path.lexists(path)]
        if present:
            result["changed"] = True
            if module._diff:
                result["diff"] = dict(before="\n".join(present) + "\n", after="",
                                      before_header=directory, after_header=directory)
            if not module.check_mode:
                for path in present:
                    os.unlink(path)
        module.exit_json(**result)

    cert = Certificate(module, cert_path, key_path)
    info = cert.inspect()
    reason = cert.why_replace(info, domains)
    if reason is None:
        result.update(domains=info["domains"], not_after=iso(info["not_after"]),
                      fingerprint_sha256=info["fingerprint_sha256"])
        module.exit_json(**result)

    result.update(changed=True, generated=True, reason=reason)
    if not module.check_mode:
        if not os.path.isdir(directory):
            os.makedirs(directory, mode=0o700)
        cert.generate(domains)
        new = cert.inspect()
        if new is None or "unreadable" in new:
            module.fail_json(msg="openssl made a certificate at %s that it cannot read back" % cert_path)
        result.update(domains=new["domains"], not_after=iso(new["not_after"]),
                      fingerprint_sha256=new["fingerprint_sha256"])
        after = describe(new)
    else:
        after = "domains: %s\n(a new certificate, valid %d days, %s key)\n" % (
            ", ".join(domains), params["days"], params["key_type"])
    if module._diff:
        result["diff"] = dict(before=describe(info), after=after,
                              before_header=cert_path, after_header="%s (new certificate: %s)" % (cert_path, reason))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
