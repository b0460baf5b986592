"""A stand-in for Cloudflare's v4 API, on 127.0.0.1, for tests.

It answers the calls dpl.platform.cloudflare_dns makes the way the documented API does:
the ``{"success", "errors", "messages", "result", "result_info"}`` envelope, zones listed
and filtered by name, DNS records listed (filtered by type, name and content), created,
updated, overwritten and deleted, the zone's ``ssl`` setting read and changed, pagination
with ``page``/``per_page`` (capped by ``max_per_page`` so that small lists span pages), and
Bearer-token authentication. Tests can make it answer HTTP 429 (with ``Retry-After``) or
any error envelope for the next requests, and read every request it received.

    with FakeCloudflare(token="t0k3n") as cf:
        zone = cf.add_zone("example.test")
        ...  # point the module at cf.base_url
        assert cf.requests[0].headers["authorization"] == "Bearer t0k3n"
"""

from __future__ import annotations

import ipaddress
import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

API_PREFIX = "/client/v4"
SSL_VALUES = ("off", "flexible", "full", "strict")


@dataclass
class Request:
    method: str
    path: str
    query: dict
    headers: dict  # names in lower case
    body: str


@dataclass
class FakeCloudflare:
    token: str = "fake-cloudflare-token-0123456789"
    max_per_page: int = 2
    zones: dict = field(default_factory=dict)  # id -> zone
    records: dict = field(default_factory=dict)  # zone id -> [record]
    ssl: dict = field(default_factory=dict)  # zone id -> mode
    requests: list = field(default_factory=list)
    rate_limit_next: int = 0  # answer this many next requests with HTTP 429
    retry_after: str = "1"
    failures: list = field(default_factory=list)  # (method, status, code, message) still to answer

    def __post_init__(self):
        self._lock = threading.Lock()
        self._server = None
        self._thread = None

    # -- the test's side ------------------------------------------------------

    def start(self):
        fake = self

        class Handler(_Handler):
            cloudflare = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-cloudflare", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(10)
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{API_PREFIX}"

    def add_zone(self, name: str, ssl: str = "flexible") -> dict:
        zone = {"id": uuid.uuid4().hex, "name": name, "status": "active", "paused": False, "type": "full"}
        with self._lock:
            self.zones[zone["id"]] = zone
            self.records[zone["id"]] = []
            self.ssl[zone["id"]] = ssl
        return zone

    def add_record(self, zone: dict, name: str, content: str, type: str = "A", proxied: bool = True,
                   ttl: int = 1, comment: str | None = None) -> dict:
        record = self._new_record(zone, {"name": name, "content": content, "type": type,
                                         "proxied": proxied, "ttl": ttl, "comment": comment})
        with self._lock:
            self.records[zone["id"]].append(record)
        return record

    def a_records(self, zone: dict, name: str) -> list[dict]:
        return [r for r in self.records[zone["id"]] if r["type"] == "A" and r["name"] == name]

    def fail_next(self, status: int, code: int, message: str, method: str | None = None) -> None:
        """Answer the next request (of ``method``, when given) with this error envelope."""
        self.failures.append((method, status, code, message))

    def mutations(self) -> list[Request]:
        return [r for r in self.requests if r.method not in ("GET", "HEAD")]

    # -- the API's side ---------------------------------------------------------

    @staticmethod
    def _new_record(zone, body):
        proxied = bool(body.get("proxied", False))
        return {
            "id": uuid.uuid4().hex, "zone_id": zone["id"], "zone_name": zone["name"],
            "name": body["name"], "type": body["type"], "content": body["content"],
            "proxiable": True, "proxied": proxied, "ttl": 1 if proxied else int(body.get("ttl", 1)),
            "comment": body.get("comment"), "tags": [], "created_on": "2026-01-01T00:00:00Z",
            "modified_on": "2026-01-01T00:00:00Z",
        }

    def handle(self, method, path, query, headers, body):
        """(status, extra headers, envelope) for one request."""
        headers = {key.lower(): value for key, value in headers.items()}
        with self._lock:
            self.requests.append(Request(method, path, query, headers, body))
            if self.rate_limit_next:
                self.rate_limit_next -= 1
                return 429, {"Retry-After": self.retry_after}, _error(
                    971, "Please wait and consider throttling your request speed")
            for failure in self.failures:
                if failure[0] in (None, method):
                    self.failures.remove(failure)
                    return failure[1], {}, _error(failure[2], failure[3])
            auth = headers.get("authorization")
            if not auth:
                return 400, {}, _error(9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers")
            if auth != f"Bearer {self.token}":
                return 403, {}, _error(9109, "Invalid access token")
            if not path.startswith(API_PREFIX + "/"):
                return 404, {}, _error(7000, "No route for that URI")
            try:
                payload = json.loads(body) if body else {}
            except ValueError:
                return 400, {}, _error(9207, "Request body is invalid JSON")
            return self._route(method, path[len(API_PREFIX):].strip("/").split("/"), query, payload)

    def _route(self, method, parts, query, payload):
        if parts == ["zones"] and method == "GET":
            zones = [z for z in self.zones.values() if "name" not in query or z["name"] == query["name"]]
            return self._page(zones, query, 50)
        if len(parts) < 2 or parts[0] != "zones" or parts[1] not in self.zones:
            where = "/".join(parts)
            return 404, {}, _error(7003, f"Could not route to {where}, perhaps your object identifier is invalid?")
        zone = self.zones[parts[1]]
        rest = parts[2:]
        if rest == [] and method == "GET":
            return _ok(zone)
        if rest == ["settings", "ssl"]:
            if method == "PATCH":
                if payload.get("value") not in SSL_VALUES:
                    return 400, {}, _error(1007, "Invalid value for zone setting ssl")
                self.ssl[zone["id"]] = payload["value"]
            elif method != "GET":
                return 405, {}, _error(10405, "Method not allowed")
            return _ok({"id": "ssl", "value": self.ssl[zone["id"]], "editable": True,
                        "modified_on": "2026-01-01T00:00:00Z"})
        if rest == ["dns_records"]:
            records = self.records[zone["id"]]
            if method == "GET":
                found = [r for r in records if all(r[key] == query[key] for key in ("type", "name", "content")
                                                   if key in query)]
                return self._page(found, query, 5000)
            if method == "POST":
                problem = self._check_record(zone, payload)
                if problem:
                    return problem
                record = self._new_record(zone, payload)
                records.append(record)
                return _ok(record)
            return 405, {}, _error(10405, "Method not allowed")
        if len(rest) == 2 and rest[0] == "dns_records":
            records = self.records[zone["id"]]
            matches = [r for r in records if r["id"] == rest[1]]
            if not matches:
                return 404, {}, _error(81044, "Record does not exist.")
            record = matches[0]
            if method == "GET":
                return _ok(record)
            if method == "DELETE":
                records.remove(record)
                return _ok({"id": record["id"]})
            if method in ("PATCH", "PUT"):
                merged = dict(record, **payload) if method == "PATCH" else dict(payload)
                problem = self._check_record(zone, merged, ignore=record)
                if problem:
                    return problem
                updated = self._new_record(zone, merged)
                updated["id"] = record["id"]
                records[records.index(record)] = updated
                return _ok(updated)
            return 405, {}, _error(10405, "Method not allowed")
        return 404, {}, _error(7000, "No route for that URI")

    def _check_record(self, zone, record, ignore=None):
        for key in ("type", "name", "content"):
            if not record.get(key):
                return 400, {}, _error(9000 + len(key), f"DNS record {key} is required")
        if record["type"] == "A":
            try:
                ipaddress.IPv4Address(record["content"])
            except ValueError:
                return 400, {}, _error(9005, "Content for A record is invalid. Must be a valid IPv4 address")
        if not (record["name"] == zone["name"] or record["name"].endswith("." + zone["name"])):
            record["name"] = f"{record['name']}.{zone['name']}"
        for other in self.records[zone["id"]]:
            if other is not ignore and all(other[key] == record[key] for key in ("type", "name", "content")):
                return 400, {}, _error(81058, "An identical record already exists.")
        return None

    def _page(self, items, query, allowed_max):
        try:
            page = max(1, int(query.get("page", 1)))
            per_page = max(1, min(int(query.get("per_page", 20)), allowed_max, self.max_per_page))
        except ValueError:
            return 400, {}, _error(1001, "Invalid pagination parameters")
        total_pages = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page:page * per_page]
        return 200, {}, {
            "success": True, "errors": [], "messages": [], "result": [dict(item) for item in chunk],
            "result_info": {"page": page, "per_page": per_page, "count": len(chunk),
                            "total_count": len(items), "total_pages": total_pages},
        }


def _ok(result):
    return 200, {}, {"success": True, "errors": [], "messages": [], "result": dict(result)}


def _error(code, message):
    return {"success": False, "errors": [{"code": code, "message": message}], "messages": [], "result": None}


class _Handler(BaseHTTPRequestHandler):
    cloudflare: FakeCloudflare
    protocol_version = "HTTP/1.1"

    def _serve(self):
        url = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        status, headers, envelope = self.cloudflare.handle(self.command, url.path, query, self.headers, body)
        data = json.dumps(envelope).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass
