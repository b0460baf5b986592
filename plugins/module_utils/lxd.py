# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one LXD access layer of DPL.

Every part of DPL that talks to LXD goes through :class:`LXDClient`: the
``dpl.platform.lxd`` connection plugin, the modules that manage LXD objects,
the test bed and the control plane's status page. It speaks the LXD REST API
directly (standard library only, so it also runs wherever a module runs):

* over the local unix socket, or over HTTPS with a client certificate and a
  *pinned* server certificate (the exact certificate, compared byte for byte);
* commands stream over LXD's exec websockets, spoken here directly with one
  ``selectors`` loop and no threads. Measured on the test bed (benchmarks/):
  ~9 ms per command with 100 kB of stdin, against ~22 ms for a ``record-output``
  exec (stdin staged as a file, four requests to read and delete the output logs)
  and ~120 ms for pylxd's ``execute()`` (a thread per stream). That is what lets
  Ansible over LXD keep up with the ``local`` connection.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import select
import selectors
import socket
import ssl
import struct
import time
from urllib.parse import quote, urlencode, urlsplit

# Where LXD puts its socket: Debian/Ubuntu deb packages, then the snap.
DEFAULT_SOCKET_PATHS = (
    "/var/lib/lxd/unix.socket",
    "/var/snap/lxd/common/lxd/unix.socket",
)


class LXDError(Exception):
    """LXD answered with an error, or could not be reached."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


class LXDNotFound(LXDError):
    """The object asked for does not exist (HTTP 404)."""


class LXDUnreachable(LXDError):
    """Nothing answers at the endpoint (daemon stopped, wrong address, bad TLS)."""


class LXDTimeout(LXDError):
    """An operation did not finish within its bound."""


def default_socket_path():
    """Return the LXD unix socket path to use when none is configured.

    ``LXD_SOCKET`` then ``LXD_DIR`` win (as for the ``lxc`` client), then the
    first known location that exists.
    """
    if os.environ.get("LXD_SOCKET"):
        return os.environ["LXD_SOCKET"]
    if os.environ.get("LXD_DIR"):
        return os.path.join(os.environ["LXD_DIR"], "unix.socket")
    for path in DEFAULT_SOCKET_PATHS:
        if os.path.exists(path):
            return path
    return DEFAULT_SOCKET_PATHS[0]


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("lxd", timeout=timeout)
        self._socket_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to an LXD server whose certificate must equal a pinned one.

    LXD servers present self-signed certificates, so CA validation proves
    nothing; comparing the exact certificate does (this is what ``lxc remote
    add`` does when it stores the server certificate).
    """

    def __init__(self, host, port, timeout, context, pinned_der):
        super().__init__(host, port, timeout=timeout, context=context)
        self._pinned_der = pinned_der

    def connect(self):
        super().connect()
        _check_pin(self.sock, self._pinned_der)


def _check_pin(sock, pinned_der):
    """Close ``sock`` and raise unless the server presented exactly the pinned certificate."""
    presented = sock.getpeercert(binary_form=True)
    if presented != pinned_der:
        sock.close()
        raise ssl.SSLError("the server's certificate (sha256 %s) is not the pinned one"
                           % hashlib.sha256(presented or b"").hexdigest())


def _load_der(pem_path):
    with open(pem_path, "rb") as handle:
        pem = handle.read().decode("ascii")
    return ssl.PEM_cert_to_DER_cert(pem)


class LXDClient:
    """A small, synchronous LXD REST client.

    :param endpoint: ``None`` or ``unix:`` for the local socket,
        ``unix:/path/to/socket``, or ``https://host:port``.
    :param client_cert: PEM client certificate (HTTPS only).
    :param client_key: PEM key of the client certificate (HTTPS only).
    :param server_cert: PEM certificate the server must present (HTTPS only;
        required there, because an unpinned LXD server proves nothing).
    :param project: LXD project to work in (``default`` when unset).
    :param timeout: seconds for connecting and for each plain request.
    """

    def __init__(self, endpoint=None, client_cert=None, client_key=None,
                 server_cert=None, project=None, timeout=30):
        self.endpoint = endpoint or "unix:"
        self.project = project
        self.timeout = timeout
        self._conn = None
        if self.endpoint.startswith("https://"):
            parts = urlsplit(self.endpoint)
            self._host, self._port = parts.hostname, parts.port or 8443
            if not (client_cert and client_key):
                raise LXDError("an HTTPS LXD endpoint needs a client certificate and key")
            if not server_cert:
                raise LXDError("an HTTPS LXD endpoint needs the server certificate to pin")
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            # Identity is proven by the pinned certificate, not by a CA chain.
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            context.load_cert_chain(client_cert, client_key)
            self._context = context
            self._pinned_der = _load_der(server_cert)
            self.socket_path = None
        elif self.endpoint.startswith("unix:") or self.endpoint.startswith("/"):
            path = self.endpoint[5:] if self.endpoint.startswith("unix:") else self.endpoint
            self.socket_path = path or default_socket_path()
        else:
            raise LXDError(
                "unsupported LXD endpoint %r: use unix:[/path/to/socket] or https://host:port"
                % self.endpoint
            )

    # -- plumbing -----------------------------------------------------------

    def describe(self):
        """A human name for the endpoint, for error messages."""
        return self.socket_path and "unix:%s" % self.socket_path or self.endpoint

    def _connection(self, timeout):
        if self._conn is None:
            if self.socket_path:
                self._conn = _UnixHTTPConnection(self.socket_path, timeout)
            else:
                self._conn = _PinnedHTTPSConnection(
                    self._host, self._port, timeout, self._context, self._pinned_der
                )
        self._conn.timeout = timeout
        if self._conn.sock is not None:
            self._conn.sock.settimeout(timeout)
        return self._conn

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _url(self, path, params=None):
        params = dict(params or {})
        if self.project and "project" not in params:
            params["project"] = self.project
        return path + ("?" + urlencode(params) if params else "")

    def raw_request(self, method, path, params=None, body=None, headers=None,
                    timeout=None):
        """Send one request; return ``(status, headers, body bytes)``.

        ``body`` may be bytes or a file object (streamed). Retries once on a
        keep-alive connection that the server had already closed.
        """
        url = self._url(path, params)
        headers = dict(headers or {})
        timeout = self.timeout if timeout is None else timeout
        for attempt in (1, 2):
            conn = self._connection(timeout)
            try:
                conn.request(method, url, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                return response.status, response.headers, data
            except (http.client.RemoteDisconnected, BrokenPipeError,
                    ConnectionResetError) as exc:
                self.close()
                if attempt == 2 or hasattr(body, "read"):
                    raise LXDUnreachable(
                        "LXD at %s closed the connection: %s" % (self.describe(), exc)
                    ) from exc
            except socket.timeout as exc:
                self.close()
                raise LXDTimeout(
                    "LXD at %s did not answer %s %s within %ss"
                    % (self.describe(), method, path, timeout)
                ) from exc
            except (OSError, ssl.SSLError) as exc:
                self.close()
                raise LXDUnreachable(
                    "cannot reach LXD at %s: %s. Is the LXD daemon running "
                    "(scripts/setup starts it)?" % (self.describe(), exc)
                ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def request(self, method, path, params=None, json_body=None, timeout=None):
        """Send a JSON request and return the decoded LXD response envelope."""
        body = None
        headers = {}
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        status, dummy, data = self.raw_request(method, path, params, body, headers, timeout)
        try:
            envelope = json.loads(data.decode() or "{}")
        except ValueError as exc:
            raise LXDError("LXD answered %s %s with non-JSON data (HTTP %s)"
                           % (method, path, status), status) from exc
        if envelope.get("type") == "error" or status >= 400:
            message = envelope.get("error") or "HTTP %s" % status
            error_class = LXDNotFound if status == 404 else LXDError
            raise error_class("%s %s: %s" % (method, path, message), status)
        return envelope

    def get(self, path, params=None):
        return self.request("GET", path, params)["metadata"]

    def wait(self, operation, timeout=None):
        """Wait for a background operation; return its final metadata.

        Raises :class:`LXDTimeout` when it is still running after ``timeout``
        seconds (``None`` waits as long as it takes) and :class:`LXDError`
        when it failed.
        """
        op_path = operation if isinstance(operation, str) else operation["operation"]
        # LXD's own wait is bounded by its timeout parameter; the socket timeout
        # gets a little slack on top so LXD, not the socket, reports the limit.
        params = {"timeout": -1 if timeout is None else max(1, int(timeout))}
        socket_timeout = None if timeout is None else timeout + 10
        meta = self.request("GET", op_path + "/wait", params, timeout=socket_timeout)["metadata"]
        if meta.get("status") in ("Running", "Pending"):
            raise LXDTimeout("operation %s still running after %ss" % (op_path, timeout))
        if meta.get("status") != "Success":
            raise LXDError(meta.get("err") or "operation %s ended as %s"
                           % (op_path, meta.get("status")))
        return meta

    def sync_or_wait(self, method, path, json_body=None, params=None, timeout=None):
        """Run a request that may be synchronous or start an operation."""
        envelope = self.request(method, path, params, json_body)
        if envelope.get("type") == "async":
            return self.wait(envelope["operation"], timeout)
        return envelope.get("metadata")

    # -- server and instances -----------------------------------------------

    def server(self):
        return self.get("/1.0")

    def instance_path(self, name):
        return "/1.0/instances/%s" % quote(name, safe="")

    def instance(self, name):
        return self.get(self.instance_path(name))

    def instance_state(self, name):
        return self.get(self.instance_path(name) + "/state")

    def instance_names(self):
        return [url.rsplit("/", 1)[-1] for url in self.get("/1.0/instances")]

    def require_running(self, name):
        """Raise a clear error unless instance ``name`` exists and runs."""
        try:
            status = self.instance(name)["status"]
        except LXDNotFound:
            raise LXDNotFound(
                "LXD instance %r does not exist on %s" % (name, self.describe()), 404
            ) from None
        if status != "Running":
            raise LXDError(
                "LXD instance %r is %s, not running: start it first" % (name, status.lower())
            )

    def set_state(self, name, action, timeout=60, force=False):
        body = {"action": action, "timeout": timeout, "force": force}
        return self.sync_or_wait("PUT", self.instance_path(name) + "/state", body,
                                 timeout=timeout + 10)

    def ipv4_addresses(self, name, interface="eth0"):
        """Global IPv4 addresses the instance has on ``interface`` now."""
        network = (self.instance_state(name).get("network") or {}).get(interface) or {}
        return [a["address"] for a in network.get("addresses", [])
                if a.get("family") == "inet" and a.get("scope") == "global"]

    def wait_for_ipv4(self, name, timeout=60, interface="eth0"):
        """Return the instance's first IPv4, or raise LXDTimeout after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            addresses = self.ipv4_addresses(name, interface)
            if addresses:
                return addresses[0]
            if time.monotonic() >= deadline:
                raise LXDTimeout(
                    "instance %r has no IPv4 address on %s after %ss" % (name, interface, timeout)
                )
            time.sleep(0.2)

    # -- commands -----------------------------------------------------------

    def execute(self, name, command, stdin=None, environment=None, user=None,
                group=None, cwd=None, timeout=None):
        """Run ``command`` (an argument list) in instance ``name``.

        Returns ``(rc, stdout bytes, stderr bytes)``. ``stdin`` (bytes) is fed
        to the command, then closed. After ``timeout`` seconds the command is
        killed and :class:`LXDTimeout` raised.
        """
        operation, sockets = self._start_exec(name, command, environment, user, group, cwd)
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            try:
                stdout, stderr = _pump(sockets["0"], sockets["1"], sockets["2"], stdin or b"", deadline)
            except LXDTimeout:
                _send_frame(sockets["control"], 0x1, json.dumps(
                    {"command": "signal", "signal": 9}).encode())
                raise LXDTimeout("command %r in instance %r did not finish within %ss: killed"
                                 % (list(command)[:3], name, timeout)) from None
        finally:
            for sock in sockets.values():
                sock.close()
        result = self.wait(operation, 60).get("metadata") or {}
        return int(result.get("return", -1)), stdout, stderr

    def _start_exec(self, name, command, environment=None, user=None, group=None, cwd=None):
        """Start ``command`` with its streams on websockets; return (operation, sockets)."""
        if isinstance(command, str):
            raise TypeError("command must be an argument list, not a string")
        body = {
            "command": list(command),
            "environment": dict(environment or {}),
            "wait-for-websocket": True,
            "interactive": False,
        }
        if user is not None:
            body["user"] = int(user)
        if group is not None:
            body["group"] = int(group)
        if cwd:
            body["cwd"] = cwd
        envelope = self.request("POST", self.instance_path(name) + "/exec", json_body=body)
        operation = envelope["operation"]
        fds = envelope["metadata"]["metadata"]["fds"]
        sockets = {}
        try:
            # LXD starts the command once every stream is connected.
            for fd in ("0", "1", "2", "control"):
                sockets[fd] = self._websocket(operation, fds[fd])
        except BaseException:
            for sock in sockets.values():
                sock.close()
            raise
        return operation, sockets

    def open_exec(self, name, command, environment=None, user=None, group=None, cwd=None):
        """Start a long-lived ``command`` and return an :class:`ExecStream` to talk to it."""
        operation, sockets = self._start_exec(name, command, environment, user, group, cwd)
        return ExecStream(operation, sockets)

    def _websocket(self, operation, secret):
        """Open one of an operation's websockets; return the connected socket."""
        if self.socket_path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
        else:
            raw = socket.create_connection((self._host, self._port), self.timeout)
            sock = self._context.wrap_socket(raw, server_hostname=self._host)
            try:
                _check_pin(sock, self._pinned_der)
            except ssl.SSLError as exc:
                raise LXDUnreachable(str(exc)) from None
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            "GET %s HTTP/1.1\r\nHost: lxd\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
            % (self._url(operation + "/websocket", {"secret": secret}), key)
        )
        sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                sock.close()
                raise LXDError("LXD closed the exec stream before accepting it")
            head += chunk
        head, rest = head.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            sock.close()
            raise LXDError("LXD refused the exec stream: %s" % head.split(b"\r\n", 1)[0].decode())
        if rest:
            # Bytes of the first frame that came with the handshake answer.
            sock = _Prefetched(sock, rest)
        return sock

    # -- files --------------------------------------------------------------

    def _file_path(self, name, path):
        if not path.startswith("/"):
            raise LXDError("instance paths must be absolute, got %r" % path)
        return self.instance_path(name) + "/files", {"path": path}

    def push_file(self, name, path, data, uid=0, gid=0, mode=0o644):
        """Write ``data`` (bytes or a binary file object) to ``path`` in the instance."""
        api_path, params = self._file_path(name, path)
        headers = {
            "Content-Type": "application/octet-stream",
            "X-LXD-type": "file",
            "X-LXD-uid": str(int(uid)),
            "X-LXD-gid": str(int(gid)),
            "X-LXD-mode": "%04o" % mode,
            "X-LXD-write": "overwrite",
        }
        if hasattr(data, "read"):
            data.seek(0, os.SEEK_END)
            headers["Content-Length"] = str(data.tell())
            data.seek(0)
        status, dummy, body = self.raw_request("POST", api_path, params, data, headers)
        if status >= 400:
            raise LXDError("cannot write %s in instance %r: %s"
                           % (path, name, _error_text(body, status)), status)

    def pull_file(self, name, path, sink=None):
        """Return the content of ``path`` (bytes), or stream it into ``sink``.

        Raises :class:`LXDNotFound` when it does not exist and
        :class:`LXDError` when it is not a regular file.
        """
        api_path, params = self._file_path(name, path)
        conn = self._connection(self.timeout)
        try:
            conn.request("GET", self._url(api_path, params))
            response = conn.getresponse()
        except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
            self.close()
            raise LXDUnreachable("cannot reach LXD at %s: %s" % (self.describe(), exc)) from exc
        kind = response.headers.get("X-LXD-type")
        if response.status >= 400 or kind not in (None, "file"):
            body = response.read()
            if response.status == 404:
                raise LXDNotFound("%s does not exist in instance %r" % (path, name), 404)
            if response.status < 400:
                raise LXDError("%s in instance %r is a %s, not a file" % (path, name, kind))
            raise LXDError("cannot read %s in instance %r: %s"
                           % (path, name, _error_text(body, response.status)), response.status)
        if sink is None:
            return response.read()
        while True:
            chunk = response.read(1 << 16)
            if not chunk:
                return None
            sink.write(chunk)

    # -- generic objects (storage pools, networks, profiles, images) ---------

    def exists(self, path):
        try:
            self.get(path)
        except LXDNotFound:
            return False
        return True


def _error_text(body, status):
    try:
        return json.loads(body.decode()).get("error") or "HTTP %s" % status
    except ValueError:
        return "HTTP %s" % status


# -- exec streams: a minimal RFC 6455 websocket client ---------------------------

class ExecStream:
    """A command left running with its stdin and stdout open (see ``open_exec``)."""

    def __init__(self, operation, sockets):
        self.operation = operation
        self.sockets = sockets
        self._reader = _FrameReader()
        for sock in sockets.values():
            sock.setblocking(True)

    def send(self, data):
        """Write ``data`` to the command's standard input."""
        self.sockets["0"].sendall(_frame(0x2, data))

    def read(self, size, watch=None, timeout=None):
        """Read exactly ``size`` bytes of the command's standard output.

        Raises EOFError when the command's output ends first, or when the socket
        ``watch`` (a client waiting for this answer) is closed meanwhile, and LXDTimeout
        when ``timeout`` seconds pass first.
        """
        stdout = self.sockets["1"]
        buffered = b"".join(self._reader.data)
        self._reader.data = []
        deadline = None if timeout is None else time.monotonic() + timeout
        while len(buffered) < size:
            if self._reader.closed:
                raise EOFError("the command's output ended")
            if watch is not None or deadline is not None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise LXDTimeout("no output within %ss" % timeout)
                readable, dummy, dummy = select.select([stdout] + ([watch] if watch is not None else []),
                                                       [], [], remaining)
                if watch is not None and watch in readable and not watch.recv(1, socket.MSG_PEEK):
                    raise EOFError("the client went away")
                if stdout not in readable and not _pending(stdout):
                    continue
            try:
                self._reader.feed(stdout.recv(1 << 16))
            except OSError:
                self._reader.closed = True
            buffered += b"".join(self._reader.data)
            self._reader.data = []
        if len(buffered) > size:
            self._reader.data = [buffered[size:]]
        return buffered[:size]

    def alive(self):
        """False when the command's output has ended (the exec is over).

        Reads what is waiting rather than peeking: TLS sockets cannot peek. What is read
        is kept in the frame reader, so nothing of the stream is lost.
        """
        stdout = self.sockets["1"]
        while not self._reader.closed:
            readable, dummy, dummy = select.select([stdout], [], [], 0)
            if not readable and not _pending(stdout):
                return True
            stdout.setblocking(False)
            try:
                self._reader.feed(stdout.recv(1 << 16))
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return True
            except OSError:
                self._reader.closed = True
            finally:
                stdout.setblocking(True)
        return False

    def kill(self, signal_number=15):
        """Signal the command (TERM by default) through the exec's control stream."""
        _send_frame(self.sockets["control"], 0x1,
                    json.dumps({"command": "signal", "signal": signal_number}).encode())

    def close(self):
        for fd in ("0", "1", "2", "control"):
            try:
                self.sockets[fd].close()
            except OSError:
                pass


class _Prefetched:
    """A socket with some already-received bytes put back in front."""

    def __init__(self, sock, data):
        self._sock = sock
        self._data = data

    def recv(self, size, flags=0):
        if self._data:
            data = self._data[:size]
            if not flags & socket.MSG_PEEK:
                self._data = self._data[size:]
            return data
        return self._sock.recv(size, flags)

    def pending(self):
        return len(self._data) + (self._sock.pending() if hasattr(self._sock, "pending") else 0)

    def __getattr__(self, name):
        return getattr(self._sock, name)


def _frame(opcode, payload):
    """One final, masked client frame (clients must mask, RFC 6455 5.3)."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    mask = os.urandom(4)
    if length:
        # XOR as one big integer: C speed, no per-byte Python loop.
        key = (mask * (length // 4 + 1))[:length]
        payload = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")
    return header + mask + payload


def _send_frame(sock, opcode, payload):
    try:
        sock.setblocking(True)
        sock.sendall(_frame(opcode, payload))
    except OSError:
        pass


class _FrameReader:
    """Collects the data frames of one server-to-client stream until it closes."""

    def __init__(self):
        self.buffer = b""
        self.data = []
        self.closed = False
        self.replies = []  # frames owed to the server (pongs)

    def feed(self, chunk):
        if not chunk:
            self.closed = True
            return
        self.buffer += chunk
        while len(self.buffer) >= 2:
            first, second = self.buffer[0], self.buffer[1]
            opcode, length, offset = first & 0x0F, second & 0x7F, 2
            if length == 126:
                if len(self.buffer) < 4:
                    return
                length, offset = struct.unpack("!H", self.buffer[2:4])[0], 4
            elif length == 127:
                if len(self.buffer) < 10:
                    return
                length, offset = struct.unpack("!Q", self.buffer[2:10])[0], 10
            if second & 0x80:  # servers do not mask; skip a mask key if one came anyway
                offset += 4
            if len(self.buffer) < offset + length:
                return
            payload = self.buffer[offset:offset + length]
            self.buffer = self.buffer[offset + length:]
            if opcode in (0x0, 0x1, 0x2):
                self.data.append(payload)
            elif opcode == 0x8:
                self.closed = True
                return
            elif opcode == 0x9:
                self.replies.append(_frame(0xA, payload))


def _pump(stdin_sock, stdout_sock, stderr_sock, stdin, deadline):
    """Send ``stdin`` then a close frame; collect stdout and stderr until both close.

    One selector loop multiplexes the three streams, so a command that writes a lot
    before reading its input cannot deadlock against us.
    """
    outgoing = {stdin_sock: bytearray(_frame(0x2, stdin) if stdin else b"") + _frame(0x8, b"")}
    readers = {stdout_sock: _FrameReader(), stderr_sock: _FrameReader()}
    selector = selectors.DefaultSelector()
    for sock in (stdin_sock, stdout_sock, stderr_sock):
        sock.setblocking(False)
    selector.register(stdin_sock, selectors.EVENT_WRITE)
    for sock in readers:
        selector.register(sock, selectors.EVENT_READ)
    try:
        while selector.get_map():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise LXDTimeout("timed out")
            # Bytes already decrypted by TLS never show up as readable: handle them first.
            ready = [(key, selectors.EVENT_READ) for key in selector.get_map().values()
                     if key.fileobj in readers and _pending(key.fileobj)]
            if not ready:
                ready = selector.select(remaining)
            for key, _events in ready:
                sock = key.fileobj
                if sock in readers:
                    reader = readers[sock]
                    try:
                        reader.feed(sock.recv(1 << 16))
                    except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                        continue
                    except OSError:
                        reader.closed = True
                    for reply in reader.replies:
                        try:
                            sock.send(reply)  # a pong: a few bytes, fits any socket buffer
                        except OSError:
                            pass
                    reader.replies = []
                    if reader.closed:
                        selector.unregister(sock)
                else:
                    pending = outgoing[sock]
                    try:
                        sent = sock.send(pending[:1 << 16])
                    except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                        continue
                    except OSError:
                        sent = len(pending)  # the command stopped reading: drop the rest
                    del pending[:sent]
                    if not pending:
                        selector.unregister(sock)
    finally:
        selector.close()
    return (b"".join(readers[stdout_sock].data), b"".join(readers[stderr_sock].data))


def _pending(sock):
    return sock.pending() if hasattr(sock, "pending") else 0
