"""The LXD client's own websocket framing and the session wire format (no LXD needed).

ansible_collections is importable because tests/conftest.py imports dpl_web.collection.
"""

from __future__ import annotations

import os
import struct

import pytest

from ansible_collections.dpl.platform.plugins.module_utils import lxd
from ansible_collections.dpl.platform.plugins.plugin_utils import lxd_session


def unmask(frame: bytes) -> tuple[int, bytes]:
    """Decode one client frame the way a server does."""
    first, second = frame[0], frame[1]
    assert first & 0x80 and second & 0x80, "final and masked"
    length, offset = second & 0x7F, 2
    if length == 126:
        length, offset = struct.unpack("!H", frame[2:4])[0], 4
    elif length == 127:
        length, offset = struct.unpack("!Q", frame[2:10])[0], 10
    mask, payload = frame[offset:offset + 4], frame[offset + 4:]
    assert len(payload) == length
    return first & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def server_frame(opcode: int, payload: bytes) -> bytes:
    length = len(payload)
    if length < 126:
        return struct.pack("!BB", 0x80 | opcode, length) + payload
    if length < 1 << 16:
        return struct.pack("!BBH", 0x80 | opcode, 126, length) + payload
    return struct.pack("!BBQ", 0x80 | opcode, 127, length) + payload


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 300_000])
def test_client_frames_are_masked_and_round_trip(size):
    payload = os.urandom(size)
    opcode, decoded = unmask(lxd._frame(0x2, payload))
    assert (opcode, decoded) == (0x2, payload)


def test_reader_reassembles_frames_split_anywhere():
    stream = server_frame(0x2, b"hello ") + server_frame(0x2, os.urandom(70_000)) + server_frame(0x8, b"")
    reader = lxd._FrameReader()
    for start in range(0, len(stream), 777):  # arbitrary chunk boundaries
        reader.feed(stream[start:start + 777])
    assert reader.closed
    assert reader.data[0] == b"hello " and len(reader.data[1]) == 70_000


def test_reader_answers_pings_and_ends_on_eof():
    reader = lxd._FrameReader()
    reader.feed(server_frame(0x9, b"are you there"))
    assert unmask(reader.replies[0]) == (0xA, b"are you there")
    assert not reader.closed
    reader.feed(b"")
    assert reader.closed


def test_prefetched_socket_peeks_without_consuming():
    class Sock:
        def recv(self, size, flags=0):
            return b"from the socket"

    wrapped = lxd._Prefetched(Sock(), b"early")
    assert wrapped.recv(3, __import__("socket").MSG_PEEK) == b"ear"
    assert wrapped.recv(100) == b"early"
    assert wrapped.recv(100) == b"from the socket"


def test_session_requests_encode_stdin_verbatim():
    encoded = lxd_session.encode_request(["/bin/sh", "-c", "cat"], {"PATH": "/bin"}, "/root", 0, 0, b"\x00\xffdata")
    hlen, slen = lxd_session.REQUEST_HEAD.unpack(encoded[:8])
    assert encoded[8 + hlen:] == b"\x00\xffdata" and slen == 6


def test_a_different_pinned_certificate_never_shares_a_session(tmp_path):
    one, two = tmp_path / "one.crt", tmp_path / "two.crt"
    one.write_text("certificate one")
    two.write_text("certificate two")
    base = {"endpoint": "https://10.0.0.2:8443", "project": None, "instance": "shop", "uid": 0,
            "client_cert": None, "client_key": None, "server_cert": str(one)}
    first = lxd_session.session_socket_path(str(tmp_path), base)
    assert first == lxd_session.session_socket_path(str(tmp_path), dict(base))
    assert first != lxd_session.session_socket_path(str(tmp_path), dict(base, server_cert=str(two)))
    assert first != lxd_session.session_socket_path(str(tmp_path), dict(base, uid=1000))
    one.write_text("certificate one, replaced in place")
    assert first != lxd_session.session_socket_path(str(tmp_path), base)


def test_https_endpoints_need_a_pinned_certificate():
    with pytest.raises(lxd.LXDError, match="needs the server certificate to pin"):
        lxd.LXDClient("https://10.0.0.2:8443", client_cert="c", client_key="k")
    with pytest.raises(lxd.LXDError, match="unsupported LXD endpoint"):
        lxd.LXDClient("ftp://10.0.0.2")


class FakeRunner:
    def __init__(self, reply=b"", fail_send=None, fail_read=None):
        self.reply, self.fail_send, self.fail_read = reply, fail_send, fail_read
        self.killed = self.closed = False

    def alive(self):
        return True

    def send(self, data):
        if self.fail_send:
            raise self.fail_send

    def read(self, size, watch=None):
        if self.fail_read:
            raise self.fail_read
        data, self.reply = self.reply[:size], self.reply[size:]
        return data

    def kill(self):
        self.killed = True

    def close(self):
        self.closed = True


def serve_with(runners):
    """Run one request through the broker's request handler; return (pool, worker's answer)."""
    import socket as socket_module

    queue = list(runners)
    pool = lxd_session.RunnerPool(lambda: queue.pop(0), lxd.LXDError)
    broker_end, worker_end = socket_module.socketpair()
    with broker_end, worker_end:
        worker_end.sendall(lxd_session.encode_request(["true"], {}, "/", 0, 0, b""))
        lxd_session._serve_one(broker_end, pool)
        answer = worker_end.recv(65536)
    return pool, answer


def reply(rc=0, out=b"", err=b""):
    head = b'{"rc": %d}' % rc
    return lxd_session.REPLY_HEAD.pack(len(head), len(out), len(err)) + head + out + err


def test_the_broker_returns_every_runner_it_takes():
    pool, answer = serve_with([FakeRunner(reply(0, b"ok"))])
    assert answer.endswith(b"ok") and pool.busy == 0 and len(pool.idle) == 1

    broken = FakeRunner(fail_read=ValueError("garbled reply"))
    pool, answer = serve_with([broken])
    assert b"session broker error" in answer and b'"not_run": false' in answer
    assert pool.busy == 0 and not pool.idle and broken.killed, "an unexpected error must not leak the runner"


def test_a_dead_runner_is_replaced_before_the_command_is_handed_over():
    dead, fresh = FakeRunner(fail_send=BrokenPipeError()), FakeRunner(reply(3, b"", b"err"))
    pool, answer = serve_with([dead, fresh])
    assert answer.endswith(b"err") and dead.killed and pool.busy == 0 and pool.idle == [fresh]


def test_the_session_control_directory_is_made_private(tmp_path):
    made = tmp_path / "cp"
    lxd_session.check_control_dir(str(made))
    assert made.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("problem", ["group-writable", "other-readable", "foreign-owner", "symlink"])
def test_an_unsafe_session_control_directory_is_refused_before_any_socket_is_used(tmp_path, problem):
    import socket

    real = tmp_path / "cp"
    real.mkdir(mode=0o700)
    control = real
    if problem == "group-writable":
        real.chmod(0o770)
    elif problem == "other-readable":
        real.chmod(0o705)
    elif problem == "foreign-owner":
        os.chown(real, 65534, 65534)
    else:
        control = tmp_path / "link"
        control.symlink_to(real)
    client = lxd_session.SessionClient(str(control), {"instance": "x"}, idle=1)
    # A socket planted where the broker's would be: it must never be talked to.
    planted = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    planted.bind(client.path)
    planted.listen(1)
    try:
        with pytest.raises(lxd_session.UnsafeControlDir, match="refusing the session control directory"):
            client.run(["true"], {}, "/", 0, 0, b"")
        planted.setblocking(False)
        with pytest.raises(BlockingIOError):
            planted.accept()
    finally:
        planted.close()
