# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Persistent command sessions into LXD instances: SSH's ControlPersist, for LXD.

Each LXD exec starts a helper process inside the instance (``lxd forkexec``), which
costs ~25 ms on an idle machine, several times what forking a shell costs on
``local``. A *session* pays that once: a small controller-side broker process keeps one
exec open in the instance, running :data:`RUNNER` (a ~40-line Python loop reading
requests on its standard input, started with ``python3 -c``), and every task's command
goes through it as one request on a local unix socket.

Nothing is installed in the instance and nothing listens there: the runner reads its
stdin and exits when the broker closes it, after ``idle`` seconds without requests (or
as soon as the broker dies). When a session cannot be used (no Python in the instance,
a broker that will not start), the caller falls back to one LXD exec per command.

Wire format, on both legs: a request is ``!II`` (header length, stdin length), a JSON
header ``{argv, env, cwd, uid, gid}``, then the stdin bytes; a reply is ``!III``
(header length, stdout length, stderr length), a JSON header ``{rc}`` or ``{error}``,
then stdout and stderr.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import socket
import stat
import struct
import subprocess
import sys
import threading
import time

REQUEST_HEAD = struct.Struct("!II")
REPLY_HEAD = struct.Struct("!III")

# Runs inside the instance, as root, under the instance's own python3.
#
# Each command runs under a small sh guard, in a process group of its own. When the runner
# dies (LXD SIGKILLs it when the broker's connection drops), the kernel sends the guard
# SIGTERM (PR_SET_PDEATHSIG), and the guard takes the whole group down: no module or
# deploy script keeps running with nobody waiting for it. The guard re-opens stdin for
# the command (sh would give a background job /dev/null).
GUARD = (
    "exec 3<&0; "
    "trap 'trap \"\" TERM INT; kill -TERM 0 2>/dev/null; sleep 2; kill -KILL 0 2>/dev/null' TERM INT; "
    '"$@" <&3 3<&- & wait $!'
)

RUNNER = r'''
import ctypes, json, os, signal, struct, subprocess, sys, time
inp, out = sys.stdin.buffer, sys.stdout.buffer
libc = ctypes.CDLL(None, use_errno=True)
runner_pid = os.getpid()
GUARD = %r
current = []
def stop(signum, frame):
    # TERM first, so a module can stop what it started (a deploy script); then KILL.
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for child in current:
            try:
                os.killpg(child.pid, sig)
            except OSError:
                pass
        if sig == signal.SIGTERM and current:
            for _ in range(30):
                if current[0].poll() is not None:
                    break
                time.sleep(0.1)
    os._exit(1)
signal.signal(signal.SIGTERM, stop)
out.write(b"R")  # ready: the broker knows this Python runs before it hands over a command
out.flush()
def read(n):
    data = b""
    while len(data) < n:
        chunk = inp.read(n - len(data))
        if not chunk:
            sys.exit(0)
        data += chunk
    return data
while True:
    hlen, slen = struct.unpack("!II", read(8))
    req = json.loads(read(hlen))
    data = read(slen)
    uid, gid = req.get("uid") or 0, req.get("gid") or 0
    def prepare(uid=uid, gid=gid):
        if uid or gid:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG, after the credential change
        if os.getppid() != runner_pid:
            os._exit(1)  # the runner died before the line above
    try:
        child = subprocess.Popen(["/bin/sh", "-c", GUARD, "dpl-guard"] + req["argv"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=req.get("cwd") or "/",
                                 env=req["env"], preexec_fn=prepare, start_new_session=True)
        current[:] = [child]
        o, e = child.communicate(data)
        rc = child.returncode
    except OSError as exc:
        rc, o, e = 127, b"", ("dpl session: %%s\n" %% exc).encode()
    current[:] = []
    head = json.dumps({"rc": rc}).encode()
    out.write(struct.pack("!III", len(head), len(o), len(e)) + head + o + e)
    out.flush()
''' % GUARD


class SessionUnavailable(Exception):
    """No session can serve this command, and it has not run: use a plain LXD exec."""


class SessionBroken(Exception):
    """The session failed after the command was handed over: it may have run, so it
    must not be run again."""


class UnsafeControlDir(Exception):
    """The control directory could let another user plant or read a session socket."""


def check_control_dir(path):
    """Make the control directory (0700) or refuse one that is not safe, as ssh refuses
    such a ControlPath: a directory another user owns or can write to could hold their
    socket posing as a broker, which would see every command and its input."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.lstat(path)
    except OSError as exc:
        raise UnsafeControlDir("cannot use the session control directory %s: %s" % (path, exc)) from None
    problem = None
    if not stat.S_ISDIR(info.st_mode):
        problem = "it is not a directory (a symbolic link?)"
    elif info.st_uid != os.getuid():
        problem = "it belongs to uid %d, not to this user (uid %d)" % (info.st_uid, os.getuid())
    elif info.st_mode & 0o077:
        problem = "its mode is %o: group and others must have no access (chmod 700 it)" % (info.st_mode & 0o777)
    if problem:
        raise UnsafeControlDir("refusing the session control directory %s: %s" % (path, problem))


def _recv_exact(sock, size):
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise EOFError("connection closed")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def encode_request(argv, env, cwd, uid, gid, stdin):
    head = json.dumps({"argv": argv, "env": env, "cwd": cwd, "uid": uid, "gid": gid}).encode()
    return REQUEST_HEAD.pack(len(head), len(stdin)) + head + stdin


_CODE_VERSION = []


def _code_version():
    """Hash of this file: a broker started by older code is never reused by newer code."""
    if not _CODE_VERSION:
        with open(os.path.abspath(__file__), "rb") as handle:
            _CODE_VERSION.append(hashlib.sha256(handle.read()).hexdigest()[:16])
    return _CODE_VERSION[0]


def session_socket_path(control_dir, broker_args):
    """One session per everything that decides where commands run and whom LXD trusts:
    endpoint, project, instance, user, and the certificates (a different pinned server
    certificate must never reuse a session opened under another)."""
    identity = dict(broker_args, broker_code=_code_version())
    for option in ("client_cert", "client_key", "server_cert"):
        if identity.get(option):
            try:
                with open(os.path.expanduser(identity[option]), "rb") as handle:
                    identity[option + "_sha256"] = hashlib.sha256(handle.read()).hexdigest()
            except OSError:
                pass  # the broker's own connection attempt reports it
    key = json.dumps(identity, sort_keys=True)
    return os.path.join(control_dir, "%s.sock" % hashlib.sha256(key.encode()).hexdigest()[:24])


# -- the worker's side ----------------------------------------------------------------

class SessionClient:
    """Sends commands to the broker of one (endpoint, project, instance, user)."""

    def __init__(self, control_dir, broker_args, idle, start_timeout=20):
        self.control_dir = control_dir
        self.broker_args = broker_args
        self.idle = idle
        self.start_timeout = start_timeout
        self.path = session_socket_path(control_dir, broker_args)

    def _connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        return sock

    def connect(self):
        check_control_dir(self.control_dir)
        try:
            return self._connect()
        except OSError:
            pass
        # One starter at a time per session: forks racing for the same instance share a broker.
        with open(self.path + ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                return self._connect()
            except OSError:
                pass
            self._start_broker()
            deadline = time.monotonic() + self.start_timeout
            while True:
                try:
                    return self._connect()
                except OSError as exc:
                    if time.monotonic() > deadline:
                        raise SessionUnavailable("session broker did not start: %s" % exc) from None
                    time.sleep(0.01)

    def _start_broker(self):
        if os.path.exists(self.path):
            os.unlink(self.path)  # stale: nothing accepted on it
        # ansible_collections/dpl/platform/plugins/plugin_utils/lxd_session.py -> the collections root
        root = os.path.abspath(__file__).rsplit(os.sep, 6)[0]
        args = dict(self.broker_args, socket=self.path, idle=self.idle)
        code = ("import sys; sys.path.insert(0, sys.argv[1]); "
                "from ansible_collections.dpl.platform.plugins.plugin_utils.lxd_session import serve; "
                "serve(sys.argv[2])")
        # The broker outlives the play that started it and serves later ones: it must not
        # carry that play's environment (DPL_JOB_ID would make a later cancel of that job
        # kill the broker under another job's commands).
        env = {key: value for key, value in os.environ.items()
               if key in ("PATH", "HOME", "LANG", "LC_ALL", "LXD_DIR", "LXD_SOCKET")}
        log = open(self.path + ".log", "ab")
        try:
            subprocess.Popen([sys.executable, "-c", code, root, json.dumps(args)],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                             start_new_session=True, close_fds=True, cwd="/")
        finally:
            log.close()

    def run(self, argv, env, cwd, uid, gid, stdin):
        """Run one command; return (rc, stdout, stderr).

        Raises SessionUnavailable when the command certainly did not run (the caller may
        run it another way), SessionBroken when it may have.
        """
        try:
            sock = self.connect()
        except OSError as exc:
            raise SessionUnavailable(str(exc)) from None
        try:
            try:
                sock.sendall(encode_request(argv, env, cwd, uid, gid, stdin or b""))
            except OSError as exc:
                raise SessionUnavailable("the session broker went away: %s" % exc) from None
            try:
                hlen, olen, elen = REPLY_HEAD.unpack(_recv_exact(sock, REPLY_HEAD.size))
                head = json.loads(_recv_exact(sock, hlen))
                stdout = _recv_exact(sock, olen)
                stderr = _recv_exact(sock, elen)
            except (OSError, EOFError, ValueError) as exc:
                raise SessionBroken("the session broke while the command ran: %s" % exc) from None
        finally:
            sock.close()
        if "error" in head:
            if head.get("not_run"):
                raise SessionUnavailable(head["error"])
            raise SessionBroken(head["error"])
        return head["rc"], stdout, stderr


# -- the broker -----------------------------------------------------------------------

def serve(raw_args):
    """Broker main loop: a thread per request, each served by a runner from the pool."""
    from ansible_collections.dpl.platform.plugins.module_utils import lxd

    args = json.loads(raw_args)
    path = args["socket"]
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        listener.bind(path)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return
        raise
    finally:
        os.umask(old_umask)
    listener.listen(16)

    def open_runner():
        client = lxd.LXDClient(endpoint=args["endpoint"], client_cert=args.get("client_cert"),
                               client_key=args.get("client_key"), server_cert=args.get("server_cert"),
                               project=args.get("project"), timeout=args.get("timeout", 30))
        try:
            runner = client.open_exec(args["instance"], ["python3", "-c", RUNNER])
        finally:
            client.close()  # the exec's own websockets stay open
        # No Python in the instance (or it cannot start): say so now, while the command to
        # run is still untouched, so the connection falls back to one exec per command.
        try:
            ready = runner.read(1, timeout=args.get("timeout", 30))
        except (OSError, EOFError, lxd.LXDTimeout) as exc:
            runner.close()
            raise lxd.LXDError("the session runner did not start in the instance (is python3 there?): %s"
                               % exc) from None
        if ready != b"R":
            runner.close()
            raise lxd.LXDError("the session runner sent %r instead of its ready mark" % ready)
        return runner

    pool = RunnerPool(open_runner, lxd.LXDError)
    try:
        pool.release(pool.acquire())  # the first runner, now: a broken instance fails fast
    except lxd.LXDError as exc:
        _refuse_all(listener, "cannot start a session in %s: %s" % (args["instance"], exc))
        os.unlink(path)
        _remove_quiet_files(path)
        return
    try:
        _serve_requests(listener, pool, args["idle"])
    finally:
        # Unlink first, so no new worker connects to a broker that is going away; then
        # answer those already queued that their command did not run.
        if os.path.exists(path):
            os.unlink(path)
        _refuse_all(listener, "the session broker was closing (idle); run the command again")
        pool.close()
        _remove_quiet_files(path)


def _remove_quiet_files(path):
    """Drop the start lock, and the log when nothing was logged."""
    for extra in (".lock", ".log"):
        try:
            if extra == ".lock" or os.path.getsize(path + extra) == 0:
                os.unlink(path + extra)
        except OSError:
            pass


class RunnerPool:
    """Idle runners, reused; a new one is opened when all are busy, so commands for the
    same instance run side by side (two apps deploying in one container, a status check
    during a deploy) instead of queueing behind each other."""

    def __init__(self, opener, error_class):
        self.opener = opener
        self.error_class = error_class
        self.idle = []
        self.busy = 0
        self.lock = threading.Lock()
        self.last_used = time.monotonic()

    def acquire(self):
        with self.lock:
            self.busy += 1
            while self.idle:
                runner = self.idle.pop()
                if runner.alive():
                    return runner
                runner.close()  # its exec ended (instance stopped or recreated)
        try:
            return self.opener()
        except BaseException:
            with self.lock:
                self.busy -= 1
            raise

    def release(self, runner):
        with self.lock:
            self.busy -= 1
            self.idle.append(runner)
            self.last_used = time.monotonic()

    def discard(self, runner):
        runner.kill()
        runner.close()
        with self.lock:
            self.busy -= 1
            self.last_used = time.monotonic()

    def idle_for(self):
        with self.lock:
            return 0 if self.busy else time.monotonic() - self.last_used

    def close(self):
        with self.lock:
            runners, self.idle = self.idle, []
        for runner in runners:
            runner.close()


def _refuse_all(listener, message):
    """Answer the workers already waiting with an error, so they fall back at once."""
    listener.settimeout(0.2)
    while True:
        try:
            conn, dummy = listener.accept()
        except OSError:
            return
        _reply_error(conn, message)
        conn.close()


def _reply_error(conn, message, not_run=True):
    try:
        head = json.dumps({"error": message, "not_run": not_run}).encode()
        conn.sendall(REPLY_HEAD.pack(len(head), 0, 0) + head)
    except OSError:
        pass


def _serve_requests(listener, pool, idle):
    listener.settimeout(1)
    while True:
        try:
            conn, dummy = listener.accept()
        except socket.timeout:
            if pool.idle_for() >= idle:
                return
            continue
        worker = threading.Thread(target=_serve_one, args=(conn, pool), daemon=True)
        worker.start()


def _serve_one(conn, pool):
    """Serve one worker's request; whatever happens, the worker gets an answer."""
    try:
        _serve_request(conn, pool)
    except Exception as exc:  # noqa: BLE001 - a broker thread must never leave a worker waiting
        _reply_error(conn, "session broker error: %r" % exc, not_run=False)
    finally:
        conn.close()


def _serve_request(conn, pool):
    conn.settimeout(None)
    try:
        hlen, slen = REQUEST_HEAD.unpack(_recv_exact(conn, REQUEST_HEAD.size))
        request = REQUEST_HEAD.pack(hlen, slen) + _recv_exact(conn, hlen + slen)
    except (OSError, EOFError):
        return
    runner = _hand_over(conn, pool, request)
    if runner is None:
        return
    # From here the command runs: every way out gives the runner back to the pool exactly
    # once (an unexpected error included), or the broker would never see itself idle.
    healthy = False
    try:
        head = runner.read(REPLY_HEAD.size, watch=conn)
        hlen, olen, elen = REPLY_HEAD.unpack(head)
        reply = head + runner.read(hlen + olen + elen, watch=conn)
        healthy = True
    except (OSError, EOFError) as exc:
        # The runner is gone (instance stopped?) or the worker gave up on its command
        # (task timeout, killed play): stop what runs and drop this runner.
        _reply_error(conn, "the session ended while the command ran: %s" % exc, not_run=False)
        return
    finally:
        if healthy:
            pool.release(runner)
        else:
            pool.discard(runner)
    try:
        conn.sendall(reply)
    except OSError:
        pass


def _hand_over(conn, pool, request):
    """Give the request to a runner; return it, or None after telling the worker that the
    command did not run (no runner could take it: retried once with a fresh one)."""
    for attempt in (1, 2):
        try:
            runner = pool.acquire()
        except pool.error_class as exc:
            _reply_error(conn, "cannot start a session runner: %s" % exc)
            return None
        try:
            runner.send(request)
            return runner
        except BaseException as exc:
            pool.discard(runner)
            if attempt == 2 or not isinstance(exc, OSError):
                _reply_error(conn, "cannot hand the command to a session runner: %s" % exc)
                if not isinstance(exc, Exception):
                    raise
                return None
    return None


if __name__ == "__main__":  # pragma: no cover - started through SessionClient
    serve(sys.argv[1])
