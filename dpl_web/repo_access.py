"""Private repositories, as the CLI, the JSON API and the web pages ask for them: a project's
deploy key (made here, shown by its public half, rotated, removed), its token for git over
https, and the git hosts' keys pinned at the first deploy.

The deploy task gets the secrets through the ``dpl.platform.registry_git_access`` lookup and
writes them into the container (``plugins/module_utils/git_access.py`` says how they reach
git without ever reaching argv, a URL, a repository's config or a log).
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dpl_web.collection import validation
from dpl_web.services import Context, Outcome, audited


def new_key_pair(project: str) -> tuple[str, str]:
    """A new ed25519 key pair, OpenSSH's formats: (private key, public key line). The
    comment names the project, so the forge's list of deploy keys says whose it is."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode("ascii")
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode("ascii")
    return private, f"{public} dpl-deploy-{project}"


def access(ctx: Context, project: str) -> dict[str, Any]:
    """What may be shown of the project's access: public key, fingerprints, token's user."""
    with ctx.open() as reg:
        return reg.git_access(project)


@audited("project.deploy_key", "project/{}")
def deploy_key(ctx: Context, project: str, rotate: bool = False) -> Outcome:
    """The project's deploy key, made when it has none. ``rotate`` makes a new one: add its
    public half to the git host, then deploy (the deploy writes it into the container), then
    remove the old one from the git host."""
    with ctx.open() as reg:
        current = reg.git_access(project)
        if current["deploy_key"] is not None and not rotate:
            return Outcome(current, False)
        private, public = new_key_pair(validation.name(project, "project"))
        reg.set_deploy_key(project, private, public)
        return Outcome(reg.git_access(project), True,
                       notes=["a new deploy key: add its public half to the repository's deploy keys (read access)"])


@audited("project.deploy_key.remove", "project/{}")
def remove_deploy_key(ctx: Context, project: str) -> Outcome:
    """Forget the project's deploy key; the next deploy deletes its copy in the container."""
    with ctx.open() as reg:
        changed = reg.remove_deploy_key(project)
        return Outcome(reg.git_access(project), changed)


@audited("project.token", "project/{}")
def set_token(ctx: Context, project: str, token: str, user: str | None = None) -> Outcome:
    """Keep the project's token for git over https (a new one replaces the old)."""
    with ctx.open() as reg:
        reg.set_git_token(project, token, user or None)
        return Outcome(reg.git_access(project), True)


@audited("project.token.remove", "project/{}")
def remove_token(ctx: Context, project: str) -> Outcome:
    with ctx.open() as reg:
        changed = reg.remove_git_token(project)
        return Outcome(reg.git_access(project), changed)


@audited("project.host_keys.pin", "project/{}")
def pin_host_keys(ctx: Context, project: str, lines: list[str]) -> Outcome:
    """Pin the keys a deploy saw on first use (hosts pinned already keep their pins)."""
    with ctx.open() as reg:
        pinned = reg.pin_host_keys(project, lines)
        return Outcome(pinned, bool(pinned))


@audited("project.host_keys.forget", "project/{}")
def forget_host_key(ctx: Context, project: str, host: str) -> Outcome:
    """Drop a host's pin after its key really changed: the next deploy pins the new one."""
    with ctx.open() as reg:
        removed = reg.forget_host_keys(project, host)
        return Outcome(reg.git_access(project), removed > 0)
