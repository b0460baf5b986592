# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small client of Cloudflare's v4 API: zones, DNS records and the zone's SSL setting.

It speaks the documented envelope (``success``, ``errors[]``, ``result``, ``result_info``),
follows pagination, and retries HTTP 429 after the ``Retry-After`` the API asks for. The
API token only ever goes into the ``Authorization`` header: it is never part of a message,
and any message is scrubbed of it anyway. Uses Ansible's ``open_url``, no extra library.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode, urlsplit

from ansible.module_utils.urls import open_url

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
SSL_MODES = ("off", "flexible", "full", "strict")
_TOKEN = re.compile(r"^[A-Za-z0-9._~+/=-]{1,512}$")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class CloudflareError(Exception):
    """The API refused a request or could not be reached. ``status`` is the HTTP status."""

    def __init__(self, message, status=None, errors=None):
        super().__init__(message)
        self.status = status
        self.errors = errors or []


def check_token(token):
    """Return a problem with ``token`` as a sentence that does not quote it, or None."""
    if not token:
        return ("no Cloudflare API token: set CLOUDFLARE_API_TOKEN in the environment of the play "
                "or pass api_token (from Ansible Vault)")
    if not _TOKEN.match(token):
        return ("the Cloudflare API token contains characters a token never has (spaces, newlines, "
                "quotes...): check CLOUDFLARE_API_TOKEN or api_token")
    return None


def check_base_url(url):
    """Return a problem with the API base URL, or None. Plain http is allowed to loopback only."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return None
    return ("api_base_url must be an https:// URL (plain http:// only to 127.0.0.1, localhost or ::1, "
            "for tests), such as %s" % DEFAULT_BASE_URL)


def zone_candidates(domain):
    """The names a domain's zone may have, most specific first: a.b.example.com, b.example.com,
    example.com."""
    labels = domain.split(".")
    return [".".join(labels[index:]) for index in range(len(labels) - 1)]


def retry_after(value, default=1.0):
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if value is None:
        return default
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, when.timestamp() - time.time())


def describe_errors(errors):
    parts = []
    for error in errors or []:
        if isinstance(error, dict):
            code, message = error.get("code"), error.get("message") or ""
            parts.append("%s %s" % (code, message) if code is not None else message)
        else:
            parts.append(str(error))
    return "; ".join(part.strip() for part in parts if part.strip()) or "no error detail given"


class CloudflareAPI:
    """One token, one base URL. ``sleep`` is replaceable for tests."""

    def __init__(self, token, base_url=DEFAULT_BASE_URL, timeout=30, retries=3, max_retry_wait=60,
                 validate_certs=True, sleep=time.sleep):
        self._token = token
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.max_retry_wait = max_retry_wait
        self.validate_certs = validate_certs
        self.sleep = sleep
        self.retried = 0

    def _scrub(self, text):
        return text.replace(self._token, "********") if self._token else text

    def request(self, method, path, params=None, body=None):
        """The ``result`` envelope of one call, as a dict; raises :class:`CloudflareError`."""
        url = self.base_url + path + ("?" + urlencode(params) if params else "")
        what = "%s %s" % (method, path)
        headers = {"Authorization": "Bearer " + self._token, "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        attempt = 0
        while True:
            try:
                response = open_url(url, data=data, headers=headers, method=method, timeout=self.timeout,
                                    validate_certs=self.validate_certs, http_agent="dpl.platform.cloudflare_dns",
                                    follow_redirects="none")
                status, raw = response.getcode(), response.read()
            except HTTPError as exc:
                status, raw = exc.code, exc.read()
                if status == 429 and attempt < self.retries:
                    attempt += 1
                    self.retried += 1
                    self.sleep(min(retry_after(exc.headers.get("Retry-After")), self.max_retry_wait))
                    continue
            except URLError as exc:
                raise CloudflareError(self._scrub("cannot reach the Cloudflare API at %s (%s): %s"
                                                  % (self.base_url, what, getattr(exc, "reason", exc)))) from None
            except (OSError, ValueError) as exc:
                raise CloudflareError(self._scrub("cannot reach the Cloudflare API at %s (%s): %s"
                                                  % (self.base_url, what, exc))) from None
            return self._envelope(what, status, raw, attempt)

    def _envelope(self, what, status, raw, attempts):
        try:
            envelope = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
        except ValueError:
            envelope = None
        if not isinstance(envelope, dict):
            raise CloudflareError(self._scrub(
                "the Cloudflare API answered %s with HTTP %s and no JSON envelope: check api_base_url "
                "(%s)" % (what, status, self.base_url)), status)
        if status == 429:
            raise CloudflareError(self._scrub(
                "the Cloudflare API still rate-limits %s (HTTP 429) after %d retries: try again later "
                "(%s)" % (what, attempts, describe_errors(envelope.get("errors")))), status,
                envelope.get("errors"))
        if status >= 400 or not envelope.get("success"):
            raise CloudflareError(self._scrub("Cloudflare refused %s (HTTP %s): %s"
                                              % (what, status, describe_errors(envelope.get("errors")))),
                                  status, envelope.get("errors"))
        return envelope

    def paged(self, path, params=None, per_page=100):
        """Every ``result`` item of a list call, following ``result_info`` page by page."""
        items = []
        page = 1
        while True:
            query = dict(params or {}, page=page, per_page=per_page)
            envelope = self.request("GET", path, query)
            result = envelope.get("result") or []
            items.extend(result)
            info = envelope.get("result_info") or {}
            total_pages = info.get("total_pages")
            if not result or total_pages is None or page >= int(total_pages):
                return items
            page += 1

    # -- zones ------------------------------------------------------------------

    def zone(self, name):
        zones = self.paged("/zones", {"name": name}, per_page=50)
        return zones[0] if zones else None

    def find_zone(self, domain):
        """The zone ``domain`` belongs to: the most specific of its parents the account has."""
        for candidate in zone_candidates(domain):
            zone = self.zone(candidate)
            if zone:
                return zone
        raise CloudflareError("no Cloudflare zone of this token holds %s (looked for %s): add the domain "
                              "to Cloudflare, or give the token access to its zone"
                              % (domain, ", ".join(zone_candidates(domain))))

    def ssl_mode(self, zone_id):
        return self.request("GET", "/zones/%s/settings/ssl" % zone_id)["result"]["value"]

    def set_ssl_mode(self, zone_id, mode):
        return self.request("PATCH", "/zones/%s/settings/ssl" % zone_id, body={"value": mode})["result"]

    # -- DNS records --------------------------------------------------------------

    def records(self, zone_id, name, record_type="A"):
        return self.paged("/zones/%s/dns_records" % zone_id, {"type": record_type, "name": name})

    def create_record(self, zone_id, record):
        return self.request("POST", "/zones/%s/dns_records" % zone_id, body=record)["result"]

    def update_record(self, zone_id, record_id, changes):
        return self.request("PATCH", "/zones/%s/dns_records/%s" % (zone_id, record_id), body=changes)["result"]

    def delete_record(self, zone_id, record_id):
        return self.request("DELETE", "/zones/%s/dns_records/%s" % (zone_id, record_id))["result"]


# The comment DPL puts on the records it creates: only records carrying it are ever
# updated or deleted, so an operator's own A record (a mail host, another server) is safe.
RECORD_COMMENT = "Managed by DPL (dpl.platform.cloudflare_dns)"


def is_dpls(record):
    return record.get("comment") == RECORD_COMMENT


def record_view(record):
    """The fields of an A record DPL manages, for comparing and for diffs."""
    return dict(name=record.get("name"), type=record.get("type"), content=record.get("content"),
                proxied=bool(record.get("proxied")), ttl=record.get("ttl"))


def plan_a_records(existing, desired, solo=True):
    """What to do so that ``desired`` (a record_view) exists, given the ``existing`` records.

    Returns ``(create, update, delete)``: a record to create or None, ``(record, changes)``
    or None, and records to delete. The record already closest to ``desired`` is kept; with
    ``solo`` every other A record of the name is deleted (no duplicates).
    """
    def score(record):
        view = record_view(record)
        return (view["content"] == desired["content"],
                view["proxied"] == desired["proxied"] and view["ttl"] == desired["ttl"])
    if not existing:
        return desired, None, []
    ranked = sorted(existing, key=score, reverse=True)
    keep, others = ranked[0], ranked[1:]
    view = record_view(keep)
    changes = {key: desired[key] for key in ("content", "proxied", "ttl") if view[key] != desired[key]}
    return None, ((keep, changes) if changes else None), (others if solo else [])
