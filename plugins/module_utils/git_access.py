# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Access to a project's private repositories: its deploy key and the git hosts' pinned
keys (git over ssh), or its token (git over https).

Runs inside the container, in the deploy pipeline; the control plane imports it for the
fingerprints and the file names. Standard library only, Python 3.8 syntax.

Nothing secret goes into argv, the repository URL, ``.git/config`` or the log. ssh and git
get fixed strings (:data:`SSH_COMMAND`, :data:`CREDENTIAL_HELPER`) that read the values from
their environment:

- the deploy key is a file ``/etc/dpl/git/<project>/deploy_key`` (mode 0600 in a 0700
  folder), written from the registry at each deploy (a rotated key replaces it, a removed
  one is deleted);
- the pins are ``/etc/dpl/git/<project>/known_hosts``, written from the registry too. A host
  with a pin is checked strictly (``StrictHostKeyChecking=yes``: a changed key fails the
  fetch); a host without one is pinned on first use (``accept-new``), and the pipeline
  returns the new lines for the registry to keep;
- the token reaches git through a credential helper reading ``$DPL_GIT_TOKEN``, configured by
  ``GIT_CONFIG_*`` variables (git 2.31 or later: Debian 12, Alpine 3.14), which git never
  writes into a repository's config; it answers only for the repository's own host.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
from urllib.parse import urlsplit

from ansible_collections.dpl.platform.plugins.module_utils import validation

ACCESS_ROOT = "/etc/dpl/git"

# No ssh_config at all (-F /dev/null): neither the system's nor root's can add trusted keys
# (KnownHostsCommand, VerifyHostKeyDNS), identities or another route to the host. The global
# known_hosts is left out too: only DPL's pins count.
SSH_COMMAND = ('ssh -F /dev/null -o BatchMode=yes -o ConnectTimeout=15 -o HashKnownHosts=no '
               '-o CheckHostIP=no -o GlobalKnownHostsFile=/dev/null -o UserKnownHostsFile="$DPL_GIT_KNOWN_HOSTS" '
               '-o StrictHostKeyChecking="$DPL_GIT_HOST_KEY_CHECK"')
SSH_KEY_OPTIONS = ' -o IdentitiesOnly=yes -i "$DPL_GIT_SSH_KEY"'
# git runs it as "<helper> get|store|erase" through the shell, the request on its stdin
# (protocol=..., host=...). Only "get" answers, and only for the repository's own host over
# https: a redirect to another host or to http never gets the token.
CREDENTIAL_HELPER = ('!f() { test "$1" = get || return 0; p=; h=; '
                     'while IFS= read -r line; do case "$line" in '
                     'protocol=*) p="${line#protocol=}";; host=*) h="${line#host=}";; esac; done; '
                     'test "$p" = https && test "$h" = "$DPL_GIT_HOST" && '
                     'printf "username=%s\\npassword=%s\\n" "$DPL_GIT_USER" "$DPL_GIT_TOKEN"; }; f')
DEFAULT_TOKEN_USER = "dpl"


def fingerprint(key):
    """OpenSSH's SHA256 fingerprint of a base64 public key (``ssh-keygen -l`` prints it)."""
    digest = hashlib.sha256(base64.b64decode(key)).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def parse_known_hosts(text):
    """``[(name, type, key)]`` of known_hosts lines; comments, blank lines and lines DPL
    would not pin (hashed names, markers, several names) skipped."""
    entries = []
    for line in (text or "").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                entries.append(validation.host_key(line))
            except validation.ValidationError:
                continue
    return entries


class GitAccess:
    """What one deploy needs to reach the project's repository."""

    def __init__(self, project, ssh_key=None, known_hosts=(), token=None, token_user=None, root=ACCESS_ROOT):
        self.folder = os.path.join(root, project)
        self.key_file = os.path.join(self.folder, "deploy_key")
        self.known_hosts_file = os.path.join(self.folder, "known_hosts")
        self.ssh_key = ssh_key
        self.pins = [validation.host_key(line) for line in known_hosts or ()]
        self.token = token
        self.token_user = token_user or DEFAULT_TOKEN_USER

    def secrets(self):
        """The values the log must never show: the token, and the key whole and line by line
        (output is also masked line by line as it streams)."""
        values = [value for value in (self.ssh_key, self.token) if value]
        if self.ssh_key:
            values += [line.strip() for line in self.ssh_key.splitlines()
                       if len(line.strip()) >= 16 and not line.startswith("-----")]
        return values

    def pinned(self, name):
        return [pin for pin in self.pins if pin[0] == name]

    def prepare(self, repo):
        """Write the key and the pins as the registry has them; True when a file changed.
        Nothing is written for a repository that needs neither (a public https one)."""
        if not (validation.ssh_repo_host(repo) or self.ssh_key or os.path.isdir(self.folder)):
            return False
        changed = not os.path.isdir(self.folder)
        os.makedirs(self.folder, mode=0o700, exist_ok=True)  # another deploy of the project may race
        os.chmod(self.folder, 0o700)
        if self.ssh_key:
            key = self.ssh_key if self.ssh_key.endswith("\n") else self.ssh_key + "\n"
            changed |= _write(self.key_file, key)
        elif os.path.exists(self.key_file):
            os.unlink(self.key_file)  # the project's key was removed: so is its copy
            changed = True
        changed |= _write(self.known_hosts_file, "".join("%s %s %s\n" % pin for pin in self.pins))
        return changed

    def env(self, repo):
        """The environment git needs for ``repo``, besides the pipeline's own."""
        ssh_host = validation.ssh_repo_host(repo)
        if ssh_host:
            pinned = self.pinned(validation.known_host_name(*ssh_host))
            env = {"GIT_SSH_COMMAND": SSH_COMMAND + (SSH_KEY_OPTIONS if self.ssh_key else ""),
                   "DPL_GIT_KNOWN_HOSTS": self.known_hosts_file,
                   # Pinned: only that key; never pinned: this first key becomes the pin.
                   "DPL_GIT_HOST_KEY_CHECK": "yes" if pinned else "accept-new"}
            if self.ssh_key:
                env["DPL_GIT_SSH_KEY"] = self.key_file
            return env
        if self.token and repo.startswith("https://"):
            config = [("credential.helper", ""),  # drops any helper the system's config sets
                      ("credential.helper", CREDENTIAL_HELPER),
                      # No hook of the checkout runs while the token is in the environment.
                      ("core.hooksPath", "/dev/null")]
            env = {"GIT_CONFIG_COUNT": str(len(config)), "DPL_GIT_USER": self.token_user,
                   "DPL_GIT_TOKEN": self.token, "DPL_GIT_HOST": urlsplit(repo).netloc}
            for index, (key, value) in enumerate(config):
                env["GIT_CONFIG_KEY_%d" % index], env["GIT_CONFIG_VALUE_%d" % index] = key, value
            return env
        return {}

    def new_host_keys(self):
        """The known_hosts lines ssh added on first use (not pinned in the registry yet)."""
        try:
            with open(self.known_hosts_file) as handle:
                seen = parse_known_hosts(handle.read())
        except (OSError, validation.ValidationError):
            return []
        return ["%s %s %s" % entry for entry in seen if entry not in self.pins]

    def explain(self, repo, output, project):
        """Why a fetch failed, in words that say what to do; None when it is not about access."""
        ssh_host = validation.ssh_repo_host(repo)
        if ssh_host:
            name = validation.known_host_name(*ssh_host)
            pinned = self.pinned(name)
            if pinned and ("REMOTE HOST IDENTIFICATION HAS CHANGED" in output
                           or "Host key verification failed" in output):
                prints = ", ".join("%s %s" % (key_type, fingerprint(key)) for _name, key_type, key in pinned)
                return ("the git host %s answered with another host key than the one pinned at the first deploy "
                        "(%s): someone may be in the way. If the host's key really changed, check its new "
                        "fingerprint with the host's admin, then forget the old pin (dpl project host-keys %s "
                        "--forget %s) and deploy again" % (name, prints, project, name))
            if "Permission denied" in output:
                if not self.ssh_key:
                    return ("the git host %s refused the connection: the project has no deploy key. Make one "
                            "(dpl project key %s) and add its public half to the repository's deploy keys"
                            % (name, project))
                return ("the git host %s refused the project's deploy key: add its public half (dpl project key "
                        "%s) to the repository's deploy keys (read access is enough)" % (name, project))
            return None
        if repo.startswith("https://") and ("Authentication failed" in output or "could not read Username" in output
                                            or "terminal prompts disabled" in output):
            if self.token:
                return ("the git host refused the project's token (user %s): set a valid one (dpl project token "
                        "%s) with read access to the repository" % (self.token_user, project))
            return ("the repository asks for credentials: set the project's token (dpl project token %s), or use "
                    "an ssh URL with the project's deploy key (dpl project key %s)" % (project, project))
        return None


def _write(path, content):
    """Replace ``path`` with ``content`` (mode 0600) unless it holds it already."""
    try:
        with open(path) as handle:
            if handle.read() == content:
                return False
    except OSError:
        pass
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".dpl-")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(content)
        os.rename(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    return True
