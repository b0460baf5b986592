#!/usr/bin/python
# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: app_deploy
short_description: Deploy an app from git into its container, keeping the old version serving on failure
version_added: 0.1.0
description:
  - The whole deploy pipeline in one task, run inside the app's container
    (through the C(dpl.platform.lxd) connection).
  - Takes the app's lock (a second deploy of the same app waits up to O(lock_timeout), then
    fails; a lock left by a killed deploy frees itself).
  - Fetches O(repo) into C(<deploy_root>/<project>/<app>) (clone once, then fetch) and
    resolves O(ref), a branch, tag or commit.
  - When that commit is already live, builds nothing; restarts only when the environment or
    start command changed, and checks health.
  - Otherwise backs up the live release (tar.gz without C(node_modules), newest
    O(keep_backups) kept), builds a new release from the commit (never in place), runs the
    deploy script, switches C(<apps_root>/<project>/<app>) to it atomically, restarts the
    app's systemd unit and checks health.
  - When the new release does not start or fails its health check, switches back to the
    previous release, restarts and re-checks it, and fails saying which step failed with the
    last lines of output.
author: DPL maintainers (@dpl-platform)
options:
  repo:
    description: Git repository URL (https, ssh, git or file URL, or C(user@host:path)).
    type: str
    required: true
  ref:
    description:
      - Branch, tag or commit to deploy.
      - When unset, the repository's default branch (the branch its C(HEAD) names), asked at
        each deploy and returned as RV(ref) and RV(default_branch).
    type: str
  git_access:
    description:
      - How to reach a private repository, as the project's record in DPL's registry has it
        (the P(dpl.platform.registry_git_access#lookup) lookup returns it).
      - Nothing in it reaches argv, the URL, the repository's C(.git/config) or the log. The
        key and the pins are written to C(/etc/dpl/git/<project>/) (mode 0600, in a 0700
        folder) and ssh reads them from there. The token reaches git through a credential
        helper that reads it from git's environment.
      - A git host reached over ssh that has no pin yet is pinned on first use; its key is
        returned as RV(new_host_keys). A host with a pin must answer with that key, or the
        fetch fails.
    type: dict
    default: {}
    suboptions:
      ssh_key:
        description: The project's deploy key, an OpenSSH private key (ed25519).
        type: str
      known_hosts:
        description: The git hosts' pinned keys, one C(HOST TYPE KEY) line each.
        type: list
        elements: str
        default: []
      token:
        description: An access token for git over https.
        type: str
      token_user:
        description: The user name sent with O(git_access.token) (C(dpl) when unset; forges take any name
          with a token, GitHub wants C(x-access-token), GitLab C(oauth2)).
        type: str
  progress_job:
    description:
      - The id of the DPL job running this deploy. When set, the steps and their output are
        written as they happen, secrets masked, to C(<deploy_root>/<project>/.<app>.progress)
        (JSON lines), for the job to follow while this one task runs.
    type: int
extends_documentation_fragment:
  - dpl.platform.app
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: partial
    details: Reports what would be deployed without fetching.
  diff_mode:
    support: full
  platform:
    platforms: posix
notes:
  - The container must run systemd (DPL's base image does); apps run as units
    C(dpl-<project>_<app>.service) logging to the journal.
"""

EXAMPLES = r"""
- name: Deploy the shop's API
  dpl.platform.app_deploy:
    project: shop
    app: api
    repo: https://git.example.com/shop/api.git
    ref: v1.4.0
    port: 4000
    env:
      NODE_ENV: production
    secret_env:
      DATABASE_URL: "{{ lookup('dpl.platform.registry_secret', 'shop/api/DATABASE_URL') }}"
"""

RETURN = r"""
commit:
  description: The commit deployed (or found live).
  returned: success
  type: str
ref:
  description: The branch, tag or commit that was resolved to RV(commit).
  returned: success
  type: str
  sample: main
default_branch:
  description: The repository's default branch, when O(ref) was not given.
  returned: success and O(ref) unset
  type: str
  sample: master
release:
  description: Id of the live release after the task (C(<UTC time>-<commit>)).
  returned: success
  type: str
replaced_release:
  description: The release that was live before, now the previous one.
  returned: when a new release went live
  type: str
backup:
  description: Path of the backup made of the release that was live.
  returned: when a live release was backed up
  type: str
skipped_build:
  description: True when the commit was already live and nothing was built.
  returned: success
  type: bool
live_port:
  description: The port of the service now live (the new slot with O(zero_downtime)).
  returned: success
  type: int
retire:
  description:
    - With O(zero_downtime), what still runs besides the live slot until
      P(dpl.platform.app_retire#module) stops it. The ports of the other slots, and
      V(in place) for the app's one service from before it had domains.
  returned: when a release is live in a slot
  type: list
  elements: str
health_status:
  description: HTTP status of the passing health check.
  returned: success
  type: int
new_host_keys:
  description:
    - Keys of git hosts reached over ssh for the first time (no pin yet), as C(HOST TYPE KEY)
      lines. They are now in the container's pin file. DPL's deploy playbook records them in the
      registry, which pins them for every later deploy.
  returned: when a git host was pinned on first use
  type: list
  elements: str
failed_step:
  description: The step that failed (lock, fetch, build, deploy script, start, health check).
  returned: failure
  type: str
rolled_back:
  description: What was done to keep the previous version serving.
  returned: failure after the switch
  type: str
log:
  description: Output of the git, deploy script and service commands (secret values masked).
  returned: always
  type: str
duration:
  description: Seconds the pipeline took.
  returned: always
  type: float
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dpl.platform.plugins.module_utils.app_pipeline import app_argument_spec, run_module


def main():
    module = AnsibleModule(
        argument_spec=app_argument_spec(
            repo=dict(type="str", required=True),
            ref=dict(type="str"),
            git_access=dict(type="dict", default={}, options=dict(
                ssh_key=dict(type="str", no_log=True),
                known_hosts=dict(type="list", elements="str", default=[]),
                token=dict(type="str", no_log=True),
                token_user=dict(type="str", no_log=False),  # a user name, shown on the project's page
            )),
            progress_job=dict(type="int"),
        ),
        supports_check_mode=True,
    )
    run_module(module, lambda pipeline: pipeline.deploy())


if __name__ == "__main__":
    main()
