# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The app an app_* module works on, and how it runs (shared by app_deploy, app_rollback,
    # app_restore and app_info).
    DOCUMENTATION = r"""
options:
  project:
    description: The app's project (an RFC 1123 label).
    type: str
    required: true
  app:
    description: The app's name (an RFC 1123 label).
    type: str
    required: true
  port:
    description:
      - TCP port the app listens on inside the container; given to it as E(PORT).
      - The app owns the next port too (O(zero_downtime) starts a new release there).
    type: int
    default: 3000
  zero_downtime:
    description:
      - Start a new release (and a rollback or restore) on the app's other port (O(port) or
        O(port)+1, the one that is not live) next to the live release, health-check it there,
        and only then make it live. A release that fails never touches the live one.
      - The proxy in front (DPL's nginx vhosts list both ports, the live one first) must be
        switched afterwards, then P(dpl.platform.app_retire#module) stops the old one;
        C(playbooks/deploy.yml) does all three for apps with domains.
      - When false, the app's one service restarts in place (a short gap), as for an app
        reached on its port directly.
    type: bool
    default: false
  start_command:
    description: Command line that starts the app, run by C(sh) in the live release directory.
    type: str
    default: npm start
  deploy_script:
    description:
      - The app's deploy script, run in a new release before it goes live. A path to a file
        in the repository (run with C(sh) unless executable) or a command line (C(sh -c)).
      - When unset and the release has a C(package.json), production dependencies are
        installed (C(npm ci --omit=dev) with a lockfile, C(npm install --omit=dev) without)
        and C(npm run build) runs when the package defines it.
    type: str
  env:
    description: Environment variables of the app and of its deploy script.
    type: dict
    default: {}
  secret_env:
    description:
      - Environment variables whose values never appear in output; their values are also
        replaced with C(********) in the deploy script's output.
    type: dict
    default: {}
  health_path:
    description: Path of the health check, an HTTP GET on 127.0.0.1 and O(port) that must answer 2xx or 3xx.
    type: str
    default: /
  health_timeout:
    description: Seconds the app has to pass its health check after a (re)start.
    type: int
    default: 30
  keep_releases:
    description: Releases to keep; the live and the previous one are always kept.
    type: int
    default: 5
  keep_backups:
    description: Backups to keep; the one just made is always kept.
    type: int
    default: 5
  lock_timeout:
    description: Seconds to wait for another deploy, rollback or restore of the same app to finish.
    type: int
    default: 120
  script_timeout:
    description: Seconds the deploy script (or the dependency install and build) may take.
    type: int
    default: 900
  git_timeout:
    description: Seconds fetching from the repository may take.
    type: int
    default: 300
  apps_root:
    description: Where live apps are, as C(<apps_root>/<project>/<app>).
    type: path
    default: /root/apps
  backups_root:
    description: Where backups go, as C(<backups_root>/<project>/<app>/<time>-<commit>.tar.gz).
    type: path
    default: /root/backups
  deploy_root:
    description: Where the git checkouts deploys start from are, as C(<deploy_root>/<project>/<app>).
    type: path
    default: /root/deploy
"""
