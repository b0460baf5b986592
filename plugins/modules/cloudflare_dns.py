#!/usr/bin/python
# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: cloudflare_dns
short_description: The A record of an app domain in Cloudflare, and the zone's SSL mode
version_added: 0.1.0
description:
  - Makes the A record of O(domain) point at O(ipv4) (the host's public IPv4), proxied through
    Cloudflare by default. The record is created when missing and updated only when its
    address, proxying or TTL differ; with O(solo) DPL's other A records of the name are
    deleted, so there is never a duplicate.
  - DPL marks the records it creates with a comment, and only ever updates or deletes records
    carrying it. When the name already has an A record DPL did not create, the task fails
    naming it and changes nothing.
  - O(state=absent) deletes DPL's A record of O(domain) pointing at O(ipv4), which is required,
    so another server's record of the same name always stays.
  - O(ssl_mode) sets the zone's SSL/TLS encryption mode; V(full) is what DPL's self-signed
    origin certificates need. The mode is never changed unless O(ssl_mode) is given (a zone
    on V(strict) stays on V(strict)).
  - The zone is O(zone), or else the most specific parent of O(domain) that the token can
    see (C(a.b.example.com), then C(b.example.com), then C(example.com)).
  - Talks to Cloudflare's v4 API with Ansible's own HTTP client. Lists are followed page by
    page; an HTTP 429 answer is retried after the C(Retry-After) time the API asks for.
  - The API token is sent only in the C(Authorization) header, as a Bearer token; it never
    appears in the task's result, its messages or its errors.
author: DPL maintainers (@dpl-platform)
options:
  domain:
    description: The app domain whose A record is managed. Required unless only O(ssl_mode) is set.
    type: str
  zone:
    description: The zone's name, when it should not be looked up from O(domain).
    type: str
  ipv4:
    description: The host's public IPv4 address. Required when O(domain) is given with O(state=present).
    type: str
  proxied:
    description: Proxy the domain's traffic through Cloudflare (orange cloud).
    type: bool
    default: true
  ttl:
    description:
      - TTL of the record in seconds, V(1) meaning automatic. Proxied records always have an
        automatic TTL, so this applies only when O(proxied=false).
    type: int
    default: 1
  solo:
    description: Delete the other A records of O(domain), so only the one of O(ipv4) remains.
    type: bool
    default: true
  state:
    description: Whether the A record exists.
    type: str
    choices: [present, absent]
    default: present
  ssl_mode:
    description:
      - The zone's SSL/TLS encryption mode. Left as it is when not given.
    type: str
    choices: ["off", flexible, full, strict]
  api_token:
    description:
      - A Cloudflare API token allowed to edit the zone's DNS (and its settings, for
        O(ssl_mode)). Keep it in Ansible Vault.
      - Taken from the environment variable C(CLOUDFLARE_API_TOKEN) when not given.
    type: str
  api_base_url:
    description:
      - Base URL of the API. Plain C(http://) is accepted only to a loopback address (tests).
    type: str
    default: https://api.cloudflare.com/client/v4
  timeout:
    description: Seconds to wait for each answer of the API.
    type: int
    default: 30
  retries:
    description: How many times a request the API rate-limits (HTTP 429) is tried again.
    type: int
    default: 3
  max_retry_wait:
    description: Longest wait, in seconds, before retrying a rate-limited request.
    type: int
    default: 60
  validate_certs:
    description: Verify the API's TLS certificate.
    type: bool
    default: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Check mode reads the zone and its records and reports what it would change.
  diff_mode:
    support: full
  platform:
    platforms: posix
seealso:
  - module: dpl.platform.nginx_vhost
  - name: Cloudflare API, DNS records
    description: The endpoints this module uses.
    link: https://developers.cloudflare.com/api/resources/dns/subresources/records/
"""

EXAMPLES = r"""
- name: Point shop.example.com at this host, through Cloudflare
  dpl.platform.cloudflare_dns:
    domain: shop.example.com
    ipv4: 203.0.113.10
  environment:
    CLOUDFLARE_API_TOKEN: "{{ vault_cloudflare_api_token }}"

- name: Full SSL mode for the zone (the origin has a self-signed certificate)
  dpl.platform.cloudflare_dns:
    zone: example.com
    ssl_mode: full
    api_token: "{{ vault_cloudflare_api_token }}"

- name: Remove the record of an app that is gone
  dpl.platform.cloudflare_dns:
    domain: old.example.com
    ipv4: 203.0.113.10
    state: absent
"""

RETURN = r"""
zone:
  description: The zone the record is in.
  returned: success
  type: dict
  contains:
    id:
      description: Zone identifier.
      type: str
    name:
      description: Zone name.
      type: str
record:
  description: The A record after the task (in check mode, as it would be).
  returned: when O(domain) is given and O(state=present)
  type: dict
  sample: {"id": "372e67954025e0ba6aaa6d586b9e0b59", "name": "shop.example.com", "type": "A",
           "content": "203.0.113.10", "proxied": true, "ttl": 1}
created:
  description: Whether the record was created (or would be, in check mode).
  returned: when O(domain) is given
  type: bool
deleted:
  description: How many A records were deleted (or would be).
  returned: when O(domain) is given
  type: int
foreign:
  description: The A records of O(domain) that DPL did not create, which it leaves alone.
  returned: when O(domain) is given
  type: list
  elements: dict
ssl_mode:
  description: The zone's SSL mode after the task.
  returned: when O(ssl_mode) is given
  type: str
retried:
  description: How many rate-limited requests were retried.
  returned: success
  type: int
"""

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.dpl.platform.plugins.module_utils import validation
from ansible_collections.dpl.platform.plugins.module_utils.cloudflare import (
    DEFAULT_BASE_URL,
    RECORD_COMMENT,
    SSL_MODES,
    CloudflareAPI,
    CloudflareError,
    check_base_url,
    check_token,
    is_dpls,
    plan_a_records,
    record_view,
)
from ansible_collections.dpl.platform.plugins.module_utils.validation import ValidationError

AUTH_HINT = (" Check that the API token (CLOUDFLARE_API_TOKEN or api_token) is valid and may edit the "
             "zone's DNS records (Zone > DNS > Edit) and, for ssl_mode, its settings (Zone > Zone Settings > Edit).")


def record_text(records):
    if not records:
        return ""
    return "".join("%s %s %s proxied=%s ttl=%s\n" % (view["name"], view["type"], view["content"],
                                                     "yes" if view["proxied"] else "no", view["ttl"])
                   for view in (record_view(record) for record in records))


def validated(module):
    params = module.params
    try:
        if params["domain"] is not None:
            validation.domain(params["domain"], "domain")
        if params["zone"] is not None:
            validation.domain(params["zone"], "zone")
        if params["ipv4"] is not None:
            validation.ipv4(params["ipv4"], "ipv4")
        if params["ttl"] != 1:
            validation.count(params["ttl"], "ttl", 30, 86400)
        validation.count(params["timeout"], "timeout", 1, 600)
        validation.count(params["retries"], "retries", 0, 20)
        validation.count(params["max_retry_wait"], "max_retry_wait", 0, 3600)
    except ValidationError as exc:
        module.fail_json(msg=str(exc))
    if params["domain"] is None and params["ssl_mode"] is None:
        module.fail_json(msg="give domain (to manage its A record), or zone and ssl_mode (to set the "
                             "zone's SSL mode), or both")
    if params["domain"] is None and params["zone"] is None:
        module.fail_json(msg="ssl_mode needs the zone: give zone, or a domain inside it")
    if params["domain"] is not None and params["state"] == "present" and params["ipv4"] is None:
        module.fail_json(msg="ipv4 (the host's public IPv4 address) is required to point %s at it"
                             % params["domain"])
    if params["domain"] is not None and params["state"] == "absent" and params["ipv4"] is None:
        module.fail_json(msg="ipv4 (the address whose record goes) is required to remove the A record of %s: "
                             "another server's record of the same name must stay" % params["domain"])
    if params["domain"] is not None and params["zone"] is not None and not (
            params["domain"] == params["zone"] or params["domain"].endswith("." + params["zone"])):
        module.fail_json(msg="%s is not inside the zone %s" % (params["domain"], params["zone"]))
    for problem in (check_token(params["api_token"]), check_base_url(params["api_base_url"])):
        if problem:
            module.fail_json(msg=problem)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            domain=dict(type="str"),
            zone=dict(type="str"),
            ipv4=dict(type="str"),
            proxied=dict(type="bool", default=True),
            ttl=dict(type="int", default=1),
            solo=dict(type="bool", default=True),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            ssl_mode=dict(type="str", choices=list(SSL_MODES)),
            api_token=dict(type="str", no_log=True, fallback=(env_fallback, ["CLOUDFLARE_API_TOKEN"])),
            api_base_url=dict(type="str", default=DEFAULT_BASE_URL),
            timeout=dict(type="int", default=30),
            retries=dict(type="int", default=3),
            max_retry_wait=dict(type="int", default=60),
            validate_certs=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    validated(module)
    api = CloudflareAPI(params["api_token"], params["api_base_url"], timeout=params["timeout"],
                        retries=params["retries"], max_retry_wait=params["max_retry_wait"],
                        validate_certs=params["validate_certs"])
    result = dict(changed=False)
    diffs = []
    try:
        if params["zone"] is not None:
            zone = api.zone(params["zone"])
            if zone is None:
                raise CloudflareError("the token sees no Cloudflare zone named %s: add the domain to "
                                      "Cloudflare, or give the token access to its zone" % params["zone"])
        else:
            zone = api.find_zone(params["domain"])
        result["zone"] = dict(id=zone["id"], name=zone["name"])
        if params["domain"] is not None:
            manage_record(module, api, zone, result, diffs)
        if params["ssl_mode"] is not None:
            before = api.ssl_mode(zone["id"])
            result["ssl_mode"] = params["ssl_mode"]
            if before != params["ssl_mode"]:
                result["changed"] = True
                diffs.append(dict(before="ssl: %s\n" % before, after="ssl: %s\n" % params["ssl_mode"],
                                  before_header="zone %s" % zone["name"], after_header="zone %s" % zone["name"]))
                if not module.check_mode:
                    result["ssl_mode"] = api.set_ssl_mode(zone["id"], params["ssl_mode"])["value"]
    except CloudflareError as exc:
        message = str(exc)
        if exc.status in (401, 403):
            message += "." + AUTH_HINT
        module.fail_json(msg=message, status=exc.status, retried=api.retried, **result)
    result["retried"] = api.retried
    if module._diff and diffs:
        result["diff"] = diffs
    module.exit_json(**result)


def manage_record(module, api, zone, result, diffs):
    params = module.params
    domain = params["domain"]
    existing = api.records(zone["id"], domain)
    ours = [record for record in existing if is_dpls(record)]
    foreign = [record for record in existing if not is_dpls(record)]
    result.update(created=False, deleted=0, foreign=[record_view(record) for record in foreign])
    if params["state"] == "absent":
        # Only DPL's record of this address: never another server's, never an operator's.
        doomed = [record for record in ours if record.get("content") == params["ipv4"]]
        remaining = [record for record in existing if record not in doomed]
        create, update = None, None
    else:
        if foreign:
            raise CloudflareError("%s already has A record(s) DPL did not create (%s): DPL replaces or deletes "
                                  "only its own records; delete those in Cloudflare's dashboard, or serve "
                                  "another name" % (domain, ", ".join(r.get("content") or "?" for r in foreign)))
        desired = dict(name=domain, type="A", content=params["ipv4"], proxied=params["proxied"],
                       ttl=1 if params["proxied"] else params["ttl"])
        create, update, doomed = plan_a_records(ours, desired, params["solo"])
        if create:
            record = dict(desired)
        elif update:
            record = dict(update[0], **update[1])
        else:
            record = [item for item in existing if item not in doomed][0]
        result["record"] = dict(record_view(record), id=record.get("id"))
        remaining = [record]
    if not (create or update or doomed):
        return
    result["changed"] = True
    result["created"] = bool(create)
    result["deleted"] = len(doomed)
    diffs.append(dict(before=record_text(existing), after=record_text(remaining),
                      before_header="%s A records in zone %s" % (domain, zone["name"]),
                      after_header="%s A records in zone %s" % (domain, zone["name"])))
    if module.check_mode:
        return
    if create:
        made = api.create_record(zone["id"], dict(create, comment=RECORD_COMMENT))
        result["record"] = dict(record_view(made), id=made.get("id"))
    if update:
        made = api.update_record(zone["id"], update[0]["id"], update[1])
        result["record"] = dict(record_view(made), id=made.get("id"))
    for record in doomed:
        api.delete_record(zone["id"], record["id"])


if __name__ == "__main__":
    main()
