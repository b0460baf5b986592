"""Steady traffic through the host's nginx, as Cloudflare would send it: HTTPS to 127.0.0.1
with the app's domain as SNI and Host, a new connection each time, every ``interval``
seconds. Used by the zero-downtime test and benchmarks/zero_downtime.py.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field


class _DomainConnection(http.client.HTTPSConnection):
    """HTTPS to nginx on loopback with ``domain`` as the TLS server name."""

    def __init__(self, domain: str, timeout: float):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the origin certificate is self-signed by design
        super().__init__("127.0.0.1", 443, timeout=timeout, context=context)
        self.domain = domain

    def connect(self) -> None:
        raw = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.domain)


@dataclass
class Sample:
    at: float
    ok: bool
    detail: str  # the version answered, or what went wrong


@dataclass
class Report:
    samples: list[Sample] = field(default_factory=list)

    @property
    def failed(self) -> list[Sample]:
        return [sample for sample in self.samples if not sample.ok]

    @property
    def longest_gap(self) -> float:
        """Longest time between two good answers (seconds), or the whole run if none was good."""
        good = [sample.at for sample in self.samples if sample.ok]
        if len(good) < 2:
            return self.samples[-1].at - self.samples[0].at if self.samples else 0.0
        return max(later - earlier for earlier, later in zip(good, good[1:], strict=False))

    @property
    def versions(self) -> list[str]:
        """The versions answered, in order, each once per run of equal answers."""
        seen: list[str] = []
        for sample in self.samples:
            if sample.ok and (not seen or seen[-1] != sample.detail):
                seen.append(sample.detail)
        return seen


def fetch(domain: str, timeout: float = 5.0) -> Sample:
    started = time.monotonic()
    connection = _DomainConnection(domain, timeout)
    try:
        connection.request("GET", "/", headers={"Host": domain})
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            return Sample(started, False, f"HTTP {response.status}")
        return Sample(started, True, json.loads(body).get("version", "?"))
    except (OSError, ValueError, http.client.HTTPException) as exc:
        return Sample(started, False, f"{type(exc).__name__}: {exc}")
    finally:
        connection.close()


class Poller:
    """Poll ``domain`` in a thread until :meth:`stop`, which returns the :class:`Report`."""

    def __init__(self, domain: str, interval: float = 0.05):
        self.domain = domain
        self.interval = interval
        self.report = Report()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.report.samples.append(fetch(self.domain))
            self._stopping.wait(self.interval)

    def stop(self) -> Report:
        self._stopping.set()
        self._thread.join(timeout=30)
        return self.report
