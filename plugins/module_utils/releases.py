# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Releases of an app inside its container: the deploy pipeline's moving parts.

Layout (the seed's three directories, plus where releases live)::

    /root/apps/<project>/<app>                    -> symlink to the live release
    /root/apps/<project>/.releases/<app>/<id>/    one directory per release
    /root/apps/<project>/.releases/<app>/.previous -> symlink to the release live before
    /root/backups/<project>/<app>/<time>-<commit>.tar.gz
    /root/deploy/<project>/<app>/                 the git clone deploys start from
    /etc/dpl/apps/<project>_<app>.{env,start}     the service's environment and start script
    dpl-<project>_<app>.service                   the systemd unit running the app

An app deployed without downtime (one with domains, behind nginx) runs in two *slots*, one
per port of :func:`validation.app_ports`; the new release starts in the idle slot next to
the live one and takes the traffic only once it is healthy::

    /root/apps/<project>/.releases/<app>/.slot-<port> -> the release that slot runs
    /root/apps/<project>/.releases/<app>/.live-port   -> "<port>": the slot that is live
    /etc/dpl/apps/<project>_<app>@<port>.{env,start}  that slot's environment and start script
    dpl-<project>_<app>@.service                      the template unit; instances by port

A release id is ``<UTC time>-<commit[:12]>``; ids sort by time, and which release is live
or previous is read from the symlinks, never from modification times. The switch is a
``rename(2)`` of a new symlink over the live one: atomic, so the path always points at a
complete release.

Everything here runs on the container's own Python (standard library only) and runs
commands as argument lists with a timeout.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request

BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RELEASE_INFO = ".dpl-release.json"
# The seed's layout in a container: the live apps, their backups, their checkouts.
APPS_ROOT = "/root/apps"
BACKUPS_ROOT = "/root/backups"
DEPLOY_ROOT = "/root/deploy"
SERVICE_DIR = "/etc/systemd/system"
OPENRC_DIR = "/etc/init.d"
OPENRC_LOG_DIR = "/var/log"
OPENRC_STATE_DIR = "/run/openrc/options"  # a service's values (supervise-daemon's start_count)
APP_CONFIG_DIR = "/etc/dpl/apps"
OUTPUT_LIMIT = 64 * 1024
# A deploy's steps in the order it takes them, as its live progress names them (and as a
# failed one is named): the job page draws them from this list.
DEPLOY_STEPS = ("lock", "fetch", "backup", "build", "deploy script", "start", "health check")
# How much of the steps' output the progress file takes (the job's log keeps the end anyway).
PROGRESS_LIMIT = 4 * 1024 * 1024
PROGRESS_POLL = 0.2  # seconds between two looks at a running step's output


class StepFailed(Exception):
    """A pipeline step failed. ``step`` names it; ``output`` holds the end of its output."""

    def __init__(self, step, message, output=""):
        super().__init__(message)
        self.step = step
        self.output = output


class Masker:
    """Replaces secret values in text meant for logs with ********."""

    def __init__(self, secrets):
        # Every secret is masked, however short (validation refuses secrets under 4 characters).
        self.secrets = sorted((v for v in secrets if v), key=len, reverse=True)

    def __call__(self, text):
        for secret in self.secrets:
            text = text.replace(secret, "********")
        return text


def tail(text, lines=30):
    return "\n".join(text.splitlines()[-lines:])


def init_system():
    """The container's init system, as DPL runs apps there: 'systemd', 'openrc' (Alpine's,
    or Debian's), or None."""
    if os.path.isdir("/run/systemd/system"):
        return "systemd"
    if os.path.isdir("/run/openrc"):
        return "openrc"
    return None


class ServiceSpec:
    """One service of an app: its unit (an OpenRC service's name), the unit's file, its env
    file and start script, the directory it runs in (a link to its release) and the port it
    is given as PORT. A slot's unit file is the app's shared template; under OpenRC the slot
    also has its own ``instance_file``, a link to the template named after the service."""

    def __init__(self, unit, unit_file, env_file, start_script, directory, port, slot=False, instance_file=None,
                 log_file=None):
        self.unit = unit
        self.unit_file = unit_file
        self.env_file = env_file
        self.start_script = start_script
        self.directory = directory
        self.port = port
        self.is_slot = slot
        self.instance_file = instance_file
        self.log_file = log_file

    def files(self):
        """The files only this service uses (a slot's unit file is the shared template)."""
        own = [self.env_file, self.start_script] + ([self.instance_file] if self.instance_file else [])
        return own if self.is_slot else [self.unit_file] + own


class AppPaths:
    def __init__(self, project, app, apps_root=APPS_ROOT, backups_root=BACKUPS_ROOT, deploy_root=DEPLOY_ROOT,
                 init="systemd"):
        self.init = init
        self.project = project
        self.app = app
        self.live = os.path.join(apps_root, project, app)
        self.releases = os.path.join(apps_root, project, ".releases", app)
        self.previous_link = os.path.join(self.releases, ".previous")
        self.backups = os.path.join(backups_root, project, app)
        self.checkout = os.path.join(deploy_root, project, app)
        self.lock = os.path.join(deploy_root, project, ".%s.lock" % app)
        # The running deploy's steps and output, line by line, for its job to follow.
        self.progress = os.path.join(deploy_root, project, ".%s.progress" % app)
        # Names are RFC 1123 labels, which never contain '_': "<project>_<app>" is unique,
        # where "<project>-<app>" would make shop/a-b and shop-a/b the same service.
        # Under OpenRC the services are scripts in /etc/init.d, and a slot is a link named
        # "<service>.<port>" to the app's template ('.' never occurs in names either).
        self.name = "dpl-%s_%s" % (project, app)
        if init == "openrc":
            self.unit = self.name
            self.unit_file = os.path.join(OPENRC_DIR, self.unit)
            self.slot_template = self.name + ".slot"
            self.slot_template_file = os.path.join(OPENRC_DIR, self.slot_template)
        else:
            self.unit = self.name + ".service"
            self.unit_file = os.path.join(SERVICE_DIR, self.unit)
            # Slots (deploys without downtime): '@' never occurs in names either.
            self.slot_template = self.name + "@.service"
            self.slot_template_file = os.path.join(SERVICE_DIR, self.slot_template)
        self.env_file = os.path.join(APP_CONFIG_DIR, "%s_%s.env" % (project, app))
        self.start_script = os.path.join(APP_CONFIG_DIR, "%s_%s.start" % (project, app))
        self.live_port_link = os.path.join(self.releases, ".live-port")

    def log_file(self, unit):
        """Where an OpenRC service's output goes (systemd's goes to the journal)."""
        return os.path.join(OPENRC_LOG_DIR, unit + ".log") if self.init == "openrc" else None

    def slot_files(self, port):
        """(directory, env file, start script) of the slot on ``port``: a number, or the
        placeholder an init system's template has in its place (systemd's ``%i``)."""
        base = os.path.join(APP_CONFIG_DIR, "%s_%s@%s" % (self.project, self.app, port))
        return os.path.join(self.releases, ".slot-%s" % port), base + ".env", base + ".start"

    def slot(self, port):
        """The service of the slot on ``port``: unit, files and directory (see :class:`ServiceSpec`)."""
        directory, env_file, start_script = self.slot_files(port)
        if self.init == "openrc":
            unit = "%s.%d" % (self.name, port)
            instance = os.path.join(OPENRC_DIR, unit)
        else:
            unit, instance = "%s@%d.service" % (self.name, port), None
        return ServiceSpec(unit=unit, unit_file=self.slot_template_file, env_file=env_file,
                           start_script=start_script, directory=directory,
                           port=port, slot=True, instance_file=instance, log_file=self.log_file(unit))

    def single(self, port):
        """The one service of an app restarted in place (no slots)."""
        return ServiceSpec(unit=self.unit, unit_file=self.unit_file, env_file=self.env_file,
                           start_script=self.start_script, directory=self.live, port=port,
                           log_file=self.log_file(self.unit))

    def slot_ports(self):
        """The ports of the slots that have files in the container, sorted."""
        ports = set()
        prefix = "%s_%s@" % (self.project, self.app)
        try:
            for entry in os.listdir(APP_CONFIG_DIR):
                if entry.startswith(prefix) and entry.endswith(".env") and entry[len(prefix):-4].isdigit():
                    ports.add(int(entry[len(prefix):-4]))
        except OSError:
            pass
        return sorted(ports)

    def live_port(self):
        """The port of the live slot, or None (no slot is live: the app runs without slots)."""
        try:
            value = os.readlink(self.live_port_link)
        except OSError:
            return None
        return int(value) if value.isdigit() else None

    def set_live_port(self, port):
        if port is None:
            if os.path.lexists(self.live_port_link):
                os.unlink(self.live_port_link)
        else:
            _atomic_symlink(str(port), self.live_port_link)

    def service_files(self):
        """The files that make the app's services: units, environments and start scripts."""
        files = [self.unit_file, self.env_file, self.start_script]
        if os.path.exists(self.slot_template_file) or self.slot_ports():
            files.append(self.slot_template_file)
        for port in self.slot_ports():
            files += self.slot(port).files()
        return files

    def removable(self):
        """Everything a deploy makes for this app but its backups, which outlive it."""
        return self.service_files() + [self.live, self.releases, self.checkout, self.lock]

    def ensure(self):
        for path in (os.path.dirname(self.live), self.releases, self.backups, os.path.dirname(self.checkout),
                     APP_CONFIG_DIR):
            os.makedirs(path, mode=0o755, exist_ok=True)

    # -- which release is where (read from the links) ------------------------------

    def release_path(self, release_id):
        return os.path.join(self.releases, release_id)

    def _link_target(self, link):
        if not os.path.islink(link):
            return None
        target = os.readlink(link)
        release_id = os.path.basename(target.rstrip("/"))
        return release_id if os.path.isdir(self.release_path(release_id)) else None

    def live_release(self):
        return self._link_target(self.live)

    def previous_release(self):
        return self._link_target(self.previous_link)

    def release_ids(self):
        try:
            # Not hidden links, not builds in progress (.tmp): only finished releases.
            return sorted(entry for entry in os.listdir(self.releases)
                          if not entry.startswith(".") and not entry.endswith(".tmp")
                          and os.path.isdir(self.release_path(entry)))
        except OSError:
            return []

    def new_release_id(self, commit):
        base = "%s-%s" % (time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()), (commit or "unknown")[:12])
        candidate, counter = base, 1
        while os.path.exists(self.release_path(candidate)) or os.path.exists(self.release_path(candidate) + ".tmp"):
            counter += 1
            candidate = "%s.%d" % (base, counter)
        return candidate

    def release_info(self, release_id):
        try:
            with open(os.path.join(self.release_path(release_id), RELEASE_INFO)) as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return {}

    # -- switching -----------------------------------------------------------------

    def adopt_legacy_live_dir(self):
        """A real directory at the live path (made by hand, or empty from the layout role)
        becomes a release, so it can be backed up and switched away from."""
        if os.path.islink(self.live) or not os.path.isdir(self.live):
            return None
        if not os.listdir(self.live):
            os.rmdir(self.live)
            return None
        release_id = "%s-pre-dpl" % time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        os.rename(self.live, self.release_path(release_id))
        _atomic_symlink(os.path.join(".releases", self.app, release_id), self.live)
        return release_id

    def switch(self, release_id):
        """Make ``release_id`` live; the release live until now becomes the previous one."""
        current = self.live_release()
        if current and current != release_id:
            _atomic_symlink(current, self.previous_link)
        _atomic_symlink(os.path.join(".releases", self.app, release_id), self.live)
        return current

    def switch_back(self, release_id, previous_of_it):
        """Undo :meth:`switch`: ``release_id`` live again, the previous link as it was."""
        _atomic_symlink(os.path.join(".releases", self.app, release_id), self.live)
        if previous_of_it:
            _atomic_symlink(previous_of_it, self.previous_link)
        elif os.path.lexists(self.previous_link):
            os.unlink(self.previous_link)

    def prune_releases(self, keep):
        """Keep the newest ``keep`` releases; never the live or the previous one."""
        protected = {self.live_release(), self.previous_release()}
        removed = []
        ids = self.release_ids()
        for release_id in ids[:max(0, len(ids) - keep)]:
            if release_id not in protected:
                shutil.rmtree(self.release_path(release_id), ignore_errors=True)
                removed.append(release_id)
        for entry in os.listdir(self.releases):
            if entry.endswith(".tmp"):  # a build a killed deploy left behind
                shutil.rmtree(self.release_path(entry), ignore_errors=True)
        return removed


def _atomic_symlink(target, link):
    temporary = "%s.%d.tmp-link" % (link, os.getpid())
    if os.path.lexists(temporary):
        os.unlink(temporary)
    os.symlink(target, temporary)
    os.rename(temporary, link)


class AppLock:
    """One deploy (or rollback, restore) of an app at a time, across processes.

    An flock on a file: the kernel releases it when its holder dies, so a lock left by a
    killed deploy frees itself; the file records who held it, for the message.
    """

    def __init__(self, path, timeout):
        self.path = path
        self.timeout = timeout
        self.handle = None

    def __enter__(self):
        self.handle = open(self.path, "a+")
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    self.handle.seek(0)
                    holder = self.handle.read().strip() or "unknown"
                    self.handle.close()
                    raise StepFailed("lock", "another deploy of this app is still running (%s); waited %ss"
                                     % (holder, self.timeout)) from None
                time.sleep(0.2)
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write("pid %d since %s" % (os.getpid(), time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())))
        self.handle.flush()
        return self

    def __exit__(self, *exc):
        self.handle.seek(0)
        self.handle.truncate()
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


class Progress:
    """A deploy's live progress, for the job that runs it to follow while the one Ansible task
    runs (Ansible says nothing until a task ends; a build may take minutes): JSON lines in
    :attr:`AppPaths.progress`, first ``{"job": ID}`` (so a follower never reads an older
    deploy's file as its own), then ``{"step": NAME}`` as each step starts and ``{"out":
    LINE}`` for each line of output (secrets masked), at most :data:`PROGRESS_LIMIT` bytes."""

    def __init__(self, path, job):
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        self.written = 0
        self.current = None
        self.cut = False
        self._write({"job": job})

    def step(self, name):
        if name != self.current:
            self.current = name
            self._write({"step": name})

    def output(self, line):
        if self.written > PROGRESS_LIMIT:
            if not self.cut:
                self.cut = True
                self._write({"note": "the rest of the output is in the job's log"})
            return
        self._write({"out": line[:2000]})

    def _write(self, record):
        data = (json.dumps(record) + "\n").encode()
        os.write(self.fd, data)
        self.written += len(data)

    def close(self):
        os.close(self.fd)


class Runner:
    """Runs commands as argument lists, with a timeout, output captured and masked.

    Commands run with a fixed environment (:data:`BASE_PATH`, a UTF-8 locale, root's home)
    plus only what the caller passes: DPL's own helpers (git, systemctl, rc-service, tar)
    never see the app's variables, so an app's ``PATH`` or ``LD_PRELOAD`` changes nothing in
    how DPL runs them, and its secrets reach only its deploy script and its service.
    """

    def __init__(self, masker, progress=None):
        self.masker = masker
        self.log = []
        self.current = None
        self.progress = progress
        self._position, self._pending = 0, b""  # how far the running step's output was read
        # Killed (task timeout, canceled job): take the running step down with us, so no
        # deploy script keeps running without its deploy.
        signal.signal(signal.SIGTERM, self._terminate)

    def _terminate(self, signum, frame):
        if self.current is not None and self.current.poll() is None:
            try:
                os.killpg(self.current.pid, signal.SIGKILL)
            except OSError:
                pass
        raise SystemExit(128 + signum)

    def run(self, step, args, cwd=None, timeout=600, env=None, check=True):
        environment = {"PATH": BASE_PATH, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": "/root"}
        environment.update(env or {})
        # Output goes to a file, not a pipe: a script that leaves a process running in the
        # background (which keeps the pipe open) must not make the step wait for it.
        with tempfile.TemporaryFile() as output_file:
            try:
                process = subprocess.Popen(args, cwd=cwd, env=environment, stdin=subprocess.DEVNULL,
                                           stdout=output_file, stderr=subprocess.STDOUT, start_new_session=True)
            except OSError as exc:
                raise StepFailed(step, "%s: cannot run %s: %s" % (step, args[0], exc)) from None
            self.current = process
            self.mark(step)
            timed_out = not self._wait(process, timeout, output_file)
            if timed_out:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            self.current = None
            self._stream(output_file, final=True)
            output_file.seek(0)
            text = self.masker(output_file.read().decode("utf-8", "replace"))
        if timed_out:
            self.log.append("$ %s (killed after %ss)\n%s" % (" ".join(args[:3]), timeout, text))
            raise StepFailed(step, "%s did not finish within %ss" % (step, timeout), tail(text))
        self.log.append("$ %s\n%s" % (" ".join(args[:4]), text))
        if check and process.returncode != 0:
            raise StepFailed(step, "%s failed (exit code %d)" % (step, process.returncode), tail(text))
        return process.returncode, text

    def mark(self, step):
        """Say that ``step`` has started (in the live progress, when there is one)."""
        if self.progress is not None:
            self.progress.step(step)

    def _wait(self, process, timeout, output_file):
        """Wait for the process; False if it outlived ``timeout``. With live progress, its
        output goes there line by line as it comes."""
        if self.progress is None:
            try:
                process.wait(timeout=timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        self._position, self._pending = 0, b""
        deadline = time.monotonic() + timeout
        while True:
            try:
                process.wait(timeout=min(PROGRESS_POLL, max(0.0, deadline - time.monotonic())))
                return True
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    return False
                self._stream(output_file)

    def _stream(self, output_file, final=False):
        """Hand the output's new complete lines (all of it when ``final``) to the progress."""
        if self.progress is None:
            return
        data = os.pread(output_file.fileno(), 1 << 20, self._position)
        self._position += len(data)
        lines = (self._pending + data).split(b"\n")
        self._pending = b"" if final else lines.pop()
        for line in lines:
            if line or not final:
                self.progress.output(self.masker(line.decode("utf-8", "replace")))

    def text(self):
        text = "\n".join(self.log)
        return text[-OUTPUT_LIMIT:]


# -- git ------------------------------------------------------------------------------

GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o ConnectTimeout=15 -o StrictHostKeyChecking=accept-new",
}


def fetch(runner, paths, repo, timeout, access_env=None):
    """Clone once, then fetch: the checkout in /root/deploy is the seed's deploy source.
    ``access_env`` reaches a private repository (git_access.GitAccess.env)."""
    env = dict(GIT_ENV, **(access_env or {}))
    git = ["git", "-C", paths.checkout]
    if not os.path.isdir(os.path.join(paths.checkout, ".git")):
        if os.path.exists(paths.checkout):
            shutil.rmtree(paths.checkout)
        runner.run("fetch", ["git", "clone", "--quiet", "--no-checkout", "--", repo, paths.checkout],
                   timeout=timeout, env=env)
    else:
        rc, url = runner.run("fetch", git + ["config", "--get", "remote.origin.url"], env=GIT_ENV, check=False)
        if rc != 0 or url.strip() != repo:
            runner.run("fetch", git + ["remote", "set-url", "origin", "--", repo], env=GIT_ENV)
    runner.run("fetch", git + ["fetch", "--quiet", "--prune", "--force", "--tags", "origin",
                               "+refs/heads/*:refs/remotes/origin/*"], timeout=timeout, env=env)


def default_branch(runner, paths, repo, timeout, access_env=None):
    """The branch the repository's HEAD names (its default branch), asked at each deploy:
    a repository whose default moves from master to main is followed."""
    rc, out = runner.run("fetch", ["git", "-C", paths.checkout, "ls-remote", "--symref", "--", repo, "HEAD"],
                         timeout=timeout, env=dict(GIT_ENV, **(access_env or {})), check=False)
    for line in out.splitlines():
        target, _tab, name = line.partition("\t")
        if name == "HEAD" and target.startswith("ref: refs/heads/"):
            return target[len("ref: refs/heads/"):]
    raise StepFailed("fetch", "the repository does not say which branch is its default (HEAD names none): "
                              "give the app a ref (a branch, tag or commit)", out if rc else "")


def branches(runner, paths, count=5):
    """A few of the repository's branches, for a message."""
    rc, out = runner.run("fetch", ["git", "-C", paths.checkout, "for-each-ref", "--count=%d" % (count + 1),
                                   "--format=%(refname:lstrip=3)", "refs/remotes/origin/"],
                         env=GIT_ENV, check=False)
    names = [name for name in out.split() if name != "HEAD"] if rc == 0 else []
    return names[:count] + (["..."] if len(names) > count else [])


def resolve(runner, paths, ref):
    """The commit a branch, tag or commit id names; StepFailed when it names nothing."""
    git = ["git", "-C", paths.checkout]
    for candidate in ("refs/remotes/origin/%s" % ref, "refs/tags/%s" % ref, ref):
        rc, out = runner.run("fetch", git + ["rev-parse", "--verify", "--quiet", "--end-of-options",
                                             candidate + "^{commit}"], env=GIT_ENV, check=False)
        if rc == 0:
            return out.strip()
    known = branches(runner, paths)
    raise StepFailed("fetch", "ref %r is not a branch, tag or commit of the repository (its branches: %s)"
                     % (ref, ", ".join(known) or "none"))


def export(runner, paths, commit, directory, timeout):
    """Write the tree of ``commit`` into ``directory`` (git archive piped into tar)."""
    os.makedirs(directory)
    env = {"PATH": BASE_PATH, "LC_ALL": "C"}
    archive = subprocess.Popen(["git", "-C", paths.checkout, "archive", "--format=tar", commit],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    extract = subprocess.Popen(["tar", "-x", "--no-same-owner", "-C", directory], stdin=archive.stdout,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    archive.stdout.close()
    try:
        _out, extract_err = extract.communicate(timeout=timeout)
        _out, archive_err = archive.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        archive.kill()
        extract.kill()
        raise StepFailed("build", "exporting commit %s did not finish within %ss" % (commit[:12], timeout)) from None
    if archive.returncode or extract.returncode:
        raise StepFailed("build", "exporting commit %s failed" % commit[:12],
                         (archive_err + extract_err).decode("utf-8", "replace"))


# -- building -------------------------------------------------------------------------

def run_deploy_step(runner, release_dir, deploy_script, env, timeout):
    """The app's deploy script, or for a Node app: production dependencies, then build.

    ``deploy_script`` is a path to a file in the repository (run with sh unless executable)
    or a command line (run with sh -c).
    """
    if deploy_script:
        candidate = os.path.join(release_dir, deploy_script)
        if os.path.isfile(candidate) and os.path.realpath(candidate).startswith(os.path.realpath(release_dir) + "/"):
            args = [candidate] if os.access(candidate, os.X_OK) else ["/bin/sh", candidate]
        else:
            args = ["/bin/sh", "-c", deploy_script]
        runner.run("deploy script", args, cwd=release_dir, timeout=timeout, env=env)
        return "script"
    package_json = os.path.join(release_dir, "package.json")
    if not os.path.isfile(package_json):
        return "none"
    npm_env = dict(env, npm_config_update_notifier="false", npm_config_fund="false", npm_config_audit="false")
    try:
        with open(package_json) as handle:
            package = json.load(handle)
    except (OSError, ValueError) as exc:
        raise StepFailed("deploy script", "package.json cannot be read: %s" % exc) from None
    scripts = package.get("scripts") or {}
    locked = any(os.path.isfile(os.path.join(release_dir, name))
                 for name in ("package-lock.json", "npm-shrinkwrap.json"))
    # Without production dependencies or install scripts npm has nothing to do, and would
    # spend half a second finding that out.
    if package.get("dependencies") or package.get("optionalDependencies") or \
            any(hook in scripts for hook in ("preinstall", "install", "postinstall", "prepare")):
        install = ["npm", "ci", "--omit=dev"] if locked else ["npm", "install", "--omit=dev"]
        runner.run("deploy script", install, cwd=release_dir, timeout=timeout, env=npm_env)
    if "build" in scripts:
        runner.run("deploy script", ["npm", "run", "build"], cwd=release_dir, timeout=timeout, env=npm_env)
    return "npm"


def write_release_info(release_dir, info):
    """Write the release's description. The repository may ship a file (or a symbolic link
    to anywhere) under that name: it is replaced, never followed or written through."""
    path = os.path.join(release_dir, RELEASE_INFO)
    if os.path.isdir(path) and not os.path.islink(path):
        raise StepFailed("build", "the repository ships a directory named %s, which DPL writes: rename it"
                         % RELEASE_INFO)
    if os.path.lexists(path):
        os.unlink(path)  # unlinks a link itself, not what it points to
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as handle:
        json.dump(info, handle, sort_keys=True)


# -- backups --------------------------------------------------------------------------

def _skip_node_modules(member):
    return None if "node_modules" in member.name.split("/") else member


def backup(paths, release_id, keep):
    """tar.gz of the live release without node_modules; keep the newest ``keep``."""
    info = paths.release_info(release_id)
    commit = (info.get("commit") or "unknown")[:12]
    name = "%s-%s.tar.gz" % (time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()), commit)
    target = os.path.join(paths.backups, name)
    counter = 1
    while os.path.exists(target):
        counter += 1
        target = os.path.join(paths.backups, name.replace(".tar.gz", ".%d.tar.gz" % counter))
    partial = target + ".partial"
    with tarfile.open(partial, "w:gz", compresslevel=6) as archive:
        archive.add(paths.release_path(release_id), arcname=".", filter=_skip_node_modules)
    os.chmod(partial, 0o600)
    os.rename(partial, target)
    prune_backups(paths, keep, protect=os.path.basename(target))
    return target


def name_parts(name):
    """``(time, commit)`` of a release id or a backup's file name, both made as
    ``<UTC time>-<commit[:12]>`` (:meth:`AppPaths.new_release_id`), with ``.<n>`` for a second
    one within the same second and ``.tar.gz`` for a backup. The commit part may be
    ``unknown``, and is "" in a name of another form."""
    stem = name[:-len(".tar.gz")] if name.endswith(".tar.gz") else name
    time_part, _sep, rest = stem.partition("-")
    return time_part, rest.split(".")[0]


def list_backups(paths):
    return list_backups_in(paths.backups)


def list_backups_in(directory):
    """The backups in ``directory``, oldest first: name, time, commit and size (the app's
    backup folder in its container, or the copies on the controller)."""
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".tar.gz"))
    except OSError:
        return []
    backups = []
    for name in names:
        stat = os.stat(os.path.join(directory, name))
        time_part, commit = name_parts(name)
        backups.append({"name": name, "time": time_part, "commit": commit, "size": stat.st_size})
    return backups


def prune_backups(paths, keep, protect):
    removed = []
    names = [b["name"] for b in list_backups(paths)]
    for name in names[:max(0, len(names) - max(keep, 1))]:
        if name != protect:
            os.unlink(os.path.join(paths.backups, name))
            removed.append(name)
    return removed


def _resolve(parts, links, hops=0):
    """Where a path inside the release leads once the archive's own symbolic links are
    followed (as extraction and the app would follow them): a list of parts, or None when
    it leaves the release or loops."""
    resolved = []
    for part in parts:
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                return None
            resolved.pop()
            continue
        resolved.append(part)
        target = links.get("/".join(resolved))
        if target is not None:
            if hops > 40 or target.startswith("/"):
                return None
            resolved = _resolve(resolved[:-1] + target.split("/"), links, hops + 1)
            if resolved is None:
                return None
    return resolved


# What a restore may extract: a backup bigger than this is not one DPL made of an app
# (backups leave node_modules out), and extracting it could fill the container's disk.
RESTORE_MAX_BYTES = 8 * 1024 ** 3
RESTORE_MAX_MEMBERS = 500000


def check_archive(path, max_bytes=RESTORE_MAX_BYTES, max_members=RESTORE_MAX_MEMBERS):
    """Refuse an archive that could write outside the release: absolute paths, '..',
    symbolic links that lead outside it (followed through the archive's other links), a
    member stored below a symbolic link, hard links, device files, a name given twice;
    and one over ``max_members`` members or ``max_bytes`` bytes once extracted (counted
    while reading the headers, before anything is written). Returns its members when safe."""
    problems = []
    members = []
    total = 0
    with tarfile.open(path, "r:*") as archive:
        for member in archive:
            members.append(member)
            total += member.size if member.isfile() else 0
            if len(members) > max_members or total > max_bytes:
                raise StepFailed("restore", "the backup archive is too big to restore, nothing was extracted: "
                                            "more than %d members or %d bytes once extracted (the limits of "
                                            "a restore)" % (max_members, max_bytes))

    def parts_of(member):
        return [part for part in member.name.split("/") if part not in ("", ".")]

    links = dict(("/".join(parts_of(member)), member.linkname) for member in members if member.issym())
    seen = set()
    for member in members:
        name, parts = member.name, parts_of(member)
        key = "/".join(parts)
        if name.startswith("/") or ".." in name.split("/"):
            problems.append("%s: path leaves the release" % name)
        elif key in seen:
            problems.append("%s: stored twice" % name)
        elif any("/".join(parts[:depth]) in links for depth in range(1, len(parts))):
            problems.append("%s: stored below a symbolic link" % name)
        elif member.issym():
            if member.linkname.startswith("/") or _resolve(parts[:-1] + member.linkname.split("/"), links) is None:
                problems.append("%s: symbolic link points outside the release (%s)" % (name, member.linkname))
        elif member.islnk():
            problems.append("%s: hard link" % name)
        elif not (member.isfile() or member.isdir()):
            problems.append("%s: device, fifo or other special file" % name)
        seen.add(key)
    if problems:
        more = " (and %d more)" % (len(problems) - 5) if len(problems) > 5 else ""
        raise StepFailed("restore", "the backup archive is unsafe, nothing was extracted: %s%s"
                         % ("; ".join(problems[:5]), more))
    return members


def extract_backup(path, release_dir, max_bytes=RESTORE_MAX_BYTES, max_members=RESTORE_MAX_MEMBERS):
    check_archive(path, max_bytes, max_members)
    os.makedirs(release_dir)
    with tarfile.open(path, "r:*") as archive:
        for member in archive.getmembers():
            member.uid = member.gid = 0
            member.uname = member.gname = "root"
            # No setuid, setgid or sticky bit: files owned by root would run as root.
            member.mode &= 0o777
            archive.extract(member, release_dir, set_attrs=True)


def directory_size(path):
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


# -- the service ----------------------------------------------------------------------

def env_file_text(env):
    lines = ["# Written by DPL; edit the app in the registry instead."]
    for key in sorted(env):
        # Inside double quotes systemd (like sh) gives \\ \" \$ and \` their literal meaning.
        value = str(env[key])
        for special in ("\\", '"', "$", "`"):
            value = value.replace(special, "\\" + special)
        lines.append('%s="%s"' % (key, value))
    return "\n".join(lines) + "\n"


def start_script_text(start_command):
    return "#!/bin/sh\n# Written by DPL: the app's start command.\nexec %s\n" % start_command


def _service_fields(paths, spec, port):
    """(directory, env file, start script, description) of ``spec``; a slot's are its
    template's, with ``port`` the init system's placeholder for the slot's port."""
    if spec.is_slot:
        return paths.slot_files(port) + ("DPL app %s/%s on port %s" % (paths.project, paths.app, port),)
    return spec.directory, spec.env_file, spec.start_script, "DPL app %s/%s" % (paths.project, paths.app)


def unit_text(paths, spec):
    """The unit of ``spec``: a slot's is the app's template, its instance name the port."""
    directory, env_file, start_script, description = _service_fields(paths, spec, "%i")
    return "\n".join([
        "# Written by DPL; edit the app in the registry instead.",
        "[Unit]",
        "Description=%s" % description,
        "After=network.target",
        # Deploys and rollbacks restart the unit on purpose, sometimes several times a
        # minute: systemd's start rate limit must not turn that into a failed start.
        "StartLimitIntervalSec=0",
        "",
        "[Service]",
        "Type=simple",
        "WorkingDirectory=%s" % directory,
        "EnvironmentFile=%s" % env_file,
        "ExecStart=%s" % start_script,
        "Restart=on-failure",
        "RestartSec=1",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ])


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def _write_if_changed(path, text, mode):
    try:
        with open(path) as handle:
            if handle.read() == text and (os.stat(path).st_mode & 0o777) == mode:
                return False
    except OSError:
        pass
    partial = path + ".partial"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(partial, mode)
    os.rename(partial, path)
    return True


class Service:
    """One service of the app, under the container's init system (:func:`service` picks the
    class): the single service restarted in place, or one slot of a deploy without downtime
    (``paths.slot(port)``). This class holds what both init systems share: the env file, the
    start script and the slot's link to its release."""

    def __init__(self, runner, paths, spec=None):
        self.runner = runner
        self.paths = paths
        self.spec = spec or paths.single(None)
        self.unit = self.spec.unit

    def install(self, env, start_command, release_id=None):
        """Write the env file (0600), start script and unit (and point a slot's directory at
        ``release_id``); True when any changed."""
        spec = self.spec
        changed = _write_if_changed(spec.env_file, env_file_text(env), 0o600)
        changed |= _write_if_changed(spec.start_script, start_script_text(start_command), 0o700)
        if spec.is_slot and release_id and self.paths._link_target(spec.directory) != release_id:
            _atomic_symlink(release_id, spec.directory)
            changed = True
        return self.install_unit() or changed

    def up_to_date(self, env, start_command, release_id):
        """Would :meth:`install` change nothing, and does the service run?"""
        spec = self.spec
        return (_read(spec.env_file) == env_file_text(env)
                and _read(spec.start_script) == start_script_text(start_command)
                and (not spec.is_slot or self.paths._link_target(spec.directory) == release_id)
                and self.state()[0] == "active")

    def snapshot(self):
        """The service's files as they are now, for :meth:`restore` after a failed switch."""
        saved = {}
        for path in self.spec.files():
            try:
                with open(path) as handle:
                    saved[path] = (handle.read(), os.stat(path).st_mode & 0o777)
            except OSError:
                saved[path] = None
        return saved

    def restore(self, saved):
        for path, content in saved.items():
            if content is not None:
                _write_if_changed(path, content[0], content[1])
        self.reload()

    def reload(self):
        """Make the init system read the service files again."""

    def delete_files(self):
        for path in self.spec.files() + ([self.spec.directory] if self.spec.is_slot else []):
            if os.path.lexists(path):
                os.unlink(path)

    def check_removed(self, step):
        active, sub, _restarts = self.state()
        if active not in ("inactive", "failed", ""):
            raise StepFailed(step, "the service %s is still %s after it was stopped and removed"
                                   % (self.unit, "/".join(filter(None, [active, sub]))))


class SystemdService(Service):
    """A systemd unit (systemd is PID 1 in DPL's base image); output in the journal."""

    def install_unit(self):
        spec = self.spec
        if not _write_if_changed(spec.unit_file, unit_text(self.paths, spec), 0o644):
            return False
        self.runner.run("start", ["systemctl", "daemon-reload"], timeout=60)
        if not spec.is_slot:  # a slot is enabled when it goes live (see enable), never before
            self.runner.run("start", ["systemctl", "enable", "--quiet", self.unit], timeout=60)
        return True

    def reload(self):
        self.runner.run("start", ["systemctl", "daemon-reload"], timeout=60)

    def restart(self):
        # Forget an earlier failure (and its restart count) before this start.
        self.runner.run("start", ["systemctl", "reset-failed", self.unit], timeout=30, check=False)
        self.runner.run("start", ["systemctl", "restart", self.unit], timeout=90)

    def enable(self, enabled=True):
        """Start at boot (the live slot) or not (a slot that is not live)."""
        self.runner.run("start", ["systemctl", "enable" if enabled else "disable", "--quiet", self.unit],
                        timeout=60, check=False)

    def stop(self):
        self.runner.run("start", ["systemctl", "stop", self.unit], timeout=90, check=False)

    def remove(self, step="remove"):
        """Stop and disable the unit, delete its own files, and make sure nothing of it runs."""
        self.runner.run(step, ["systemctl", "disable", "--now", "--quiet", self.unit], timeout=90, check=False)
        self.delete_files()
        self.runner.run(step, ["systemctl", "daemon-reload"], timeout=60)
        self.runner.run(step, ["systemctl", "reset-failed", self.unit], timeout=30, check=False)
        self.check_removed(step)

    def state(self):
        """(ActiveState, SubState, NRestarts) of the unit; not logged (polled often)."""
        try:
            out = subprocess.run(["systemctl", "show", "-p", "ActiveState", "-p", "SubState", "-p", "NRestarts",
                                  self.unit], capture_output=True, text=True, timeout=30, check=False,
                                 env={"PATH": BASE_PATH, "LC_ALL": "C"}).stdout
        except (OSError, subprocess.TimeoutExpired):
            return "", "", ""
        values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        return values.get("ActiveState", ""), values.get("SubState", ""), values.get("NRestarts", "")

    def journal(self, lines=30):
        rc, out = self.runner.run("start", ["journalctl", "-u", self.unit, "-n", str(lines), "--no-pager",
                                            "-o", "cat"], timeout=30, check=False)
        return out


class OpenRCService(Service):
    """An OpenRC service run by ``supervise-daemon`` (Alpine's init, and Debian's openrc): it
    respawns the app one second after it dies, and writes its output to ``spec.log_file``.
    A slot is a link ``dpl-<project>_<app>.<port>`` to the app's template script."""

    def install_unit(self):
        spec = self.spec
        changed = _write_if_changed(spec.unit_file, openrc_script_text(self.paths, spec), 0o755)
        if spec.instance_file:
            template = os.path.basename(spec.unit_file)
            if not os.path.islink(spec.instance_file) or os.readlink(spec.instance_file) != template:
                _atomic_symlink(template, spec.instance_file)
                changed = True
        if changed and not spec.is_slot:
            self.enable()
        return changed

    def restart(self):
        # A new supervise-daemon counts its respawns from 0 (as systemd's reset-failed).
        self.runner.run("start", ["rc-service", self.unit, "restart"], timeout=90)

    def enable(self, enabled=True):
        """In the default runlevel (the live slot) or not (a slot that is not live)."""
        self.runner.run("start", ["rc-update", "add" if enabled else "del", self.unit, "default"],
                        timeout=60, check=False)

    def exists(self):
        return os.path.exists(os.path.join(OPENRC_DIR, self.unit))

    def stop(self, step="start"):
        if self.exists():
            self.runner.run(step, ["rc-service", self.unit, "stop"], timeout=90, check=False)
        elif os.path.lexists(os.path.join(OPENRC_DIR, self.unit)):
            # A slot whose template is gone: its supervisor can still be told to stop.
            self.runner.run(step, ["supervise-daemon", self.unit, "--stop"], timeout=90, check=False)

    def remove(self, step="remove"):
        """Stop it and make sure nothing of it runs, take it out of the runlevel, delete its
        own files (its log stays, as the journal does)."""
        if os.path.lexists(os.path.join(OPENRC_DIR, self.unit)):
            self.stop(step)
            self.check_removed(step)  # while the script is there to ask
            self.runner.run(step, ["rc-update", "del", self.unit, "default"], timeout=60, check=False)
            if self.state()[0] == "failed":  # crashed: forget that state with the service
                self.runner.run(step, ["rc-service", self.unit, "zap"], timeout=30, check=False)
        self.delete_files()

    # rc-service's exit codes for status (its words for the last three go to stderr).
    STATUS_CODES = {0: "started", 3: "stopped", 4: "stopping", 8: "starting", 16: "inactive", 32: "crashed"}

    def state(self):
        """(active, status, respawns) as systemd's (ActiveState, SubState, NRestarts):
        'active' when started, 'failed' when crashed; not logged (polled often)."""
        if not self.exists():
            return "", "", ""
        try:
            code = subprocess.run(["rc-service", self.unit, "status"], capture_output=True, timeout=30, check=False,
                                  env={"PATH": BASE_PATH, "LC_ALL": "C"}).returncode
        except (OSError, subprocess.TimeoutExpired):
            return "", "", ""
        status = self.STATUS_CODES.get(code, "unknown")
        active = {"started": "active", "crashed": "failed", "starting": "activating",
                  "stopping": "deactivating"}.get(status, "inactive")
        # supervise-daemon keeps how often it respawned the app beside the service's state.
        try:
            with open(os.path.join(OPENRC_STATE_DIR, self.unit, "start_count")) as handle:
                restarts = handle.read().strip()
        except OSError:
            restarts = "0"
        return active, status, restarts

    def journal(self, lines=30):
        """The last lines of the service's log file."""
        try:
            with open(self.spec.log_file, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(handle.tell() - 64 * 1024, 0))
                return self.runner.masker(b"\n".join(handle.read().splitlines()[-lines:]).decode("utf-8", "replace"))
        except OSError:
            return ""


def service(runner, paths, spec=None):
    """The app's service (``paths.single(port)`` or ``paths.slot(port)``) under the container's
    init system, which ``paths`` was made for."""
    if paths.init == "openrc":
        return OpenRCService(runner, paths, spec)
    if paths.init == "systemd" and os.path.isdir("/run/systemd/system"):
        return SystemdService(runner, paths, spec)
    raise StepFailed("start", "this container runs neither systemd nor OpenRC: DPL runs apps as systemd units or "
                              "OpenRC services (see docs/deploy.md)")


def openrc_script_text(paths, spec):
    """The OpenRC script of ``spec``: a slot's is the app's template, its port the suffix
    of the name it is run as (the link's)."""
    directory, env_file, start_script, description = _service_fields(paths, spec, "${RC_SVCNAME##*.}")
    # The env file's values are quoted for sh (env_file_text): sourcing it gives them back exactly.
    return "\n".join([
        "#!/sbin/openrc-run",
        "# Written by DPL; edit the app in the registry instead.",
        'description="%s"' % description,
        "supervisor=supervise-daemon",
        "command=/bin/sh",
        "command_args=\"-c 'set -a; . %s; set +a; exec %s'\""
        % (env_file, start_script),
        'directory="%s"' % directory,
        'output_log="%s/${RC_SVCNAME}.log"' % OPENRC_LOG_DIR,
        'error_log="%s/${RC_SVCNAME}.log"' % OPENRC_LOG_DIR,
        # Respawn one second after a crash, without end (systemd's Restart=on-failure, RestartSec=1).
        "respawn_delay=1",
        "respawn_max=0",
        # supervise-daemon stops the app's first process only (npm, whose node lives on): on
        # stop, OpenRC kills what is left in the service's cgroup (systemd's KillMode).
        'rc_cgroup_cleanup="yes"',
        "",
        # OpenRC 0.53 and later (Alpine 3.20) keep a service's cgroup v2 under openrc.<service>,
        # where their own cleanup does not look yet (OpenRC issue 910): kill what is left there.
        "stop_post() {",
        '    if [ -w "/sys/fs/cgroup/openrc.${RC_SVCNAME}/cgroup.kill" ]; then',
        '        echo 1 > "/sys/fs/cgroup/openrc.${RC_SVCNAME}/cgroup.kill"',
        "    fi",
        "    return 0",
        "}",
        "",
        "depend() {",
        "    use net",
        "}",
        "",
    ])


def port_in_use(port):
    """Does something accept connections on 127.0.0.1:``port``?"""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a 3xx answer counts as healthy; do not follow it


def health_check(service, port, path, timeout):
    """Poll http://127.0.0.1:<port><path> until it answers 2xx/3xx.

    Fails as step 'start' when the service keeps dying, as step 'health check' when it runs
    but never answers well within ``timeout`` seconds.
    """
    opener = urllib.request.build_opener(_NoRedirect, urllib.request.ProxyHandler({}))
    url = "http://127.0.0.1:%d%s" % (port, path)
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    next_state_check = 0.0
    while True:
        try:
            with opener.open(url, timeout=2) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            if 300 <= exc.code < 400:
                return exc.code
            last = "HTTP %d" % exc.code
        except (urllib.error.URLError, OSError) as exc:
            last = str(getattr(exc, "reason", exc))
        now = time.monotonic()
        if now >= next_state_check:
            # Asking systemd costs a process: twice a second is enough to see a crash loop.
            next_state_check = now + 0.5
            active, sub, restarts = service.state()
            if active == "failed" or (restarts.isdigit() and int(restarts) >= 3):
                raise StepFailed("start", "the app does not stay up (service %s, restarted %s times)"
                                 % ("/".join(filter(None, [active, sub])), restarts or 0), service.journal())
        if now >= deadline:
            raise StepFailed("health check", "%s did not answer 2xx/3xx within %ss (last: %s)"
                             % (url, timeout, last), service.journal())
        # Poll fast: an app that is up in 300 ms should go live in about 300 ms.
        time.sleep(0.05)
