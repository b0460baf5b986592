# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deploy, rollback and restore pipelines, run in one module call inside the container.

One task doing every step costs one Ansible round trip instead of dozens (Ansistrano's
51 tasks take ~4.5 s where the work itself takes ~0.15 s).

Two ways to put a release live:

- in place (an app without domains): the one service restarts in the new release, and a
  failure puts the old one back;
- in slots (``zero_downtime``, an app behind nginx): the new release starts on the app's
  other port next to the live one and is health-checked there; only then does it become the
  live one (the links and ``.live-port``). The proxy is switched to it afterwards, and
  :meth:`Pipeline.retire` stops the old slot. A release that fails never touches the live one.

Every pipeline holds the app's lock, and keeps the previous version serving when anything
fails: nothing live is touched until a new release is completely built, and a release
that does not start or does not pass its health check is switched back at once.
"""

from __future__ import annotations

import os
import shutil
import time

from ansible_collections.dpl.platform.plugins.module_utils import git_access, releases
from ansible_collections.dpl.platform.plugins.module_utils.releases import StepFailed


class Pipeline:
    def __init__(self, params, check_mode=False):
        self.params = params
        self.check_mode = check_mode
        # The service files and commands follow the container's init: systemd or OpenRC.
        self.paths = releases.AppPaths(params["project"], params["app"], params["apps_root"],
                                       params["backups_root"], params["deploy_root"],
                                       init=releases.init_system() or "systemd")
        secret_env = params.get("secret_env") or {}
        access = params.get("git_access") or {}
        self.access = git_access.GitAccess(params["project"], access.get("ssh_key"), access.get("known_hosts"),
                                           access.get("token"), access.get("token_user"))
        self.masker = releases.Masker([str(v) for v in secret_env.values()] + self.access.secrets())
        self.env = {k: str(v) for k, v in (params.get("env") or {}).items()}
        self.env.update({k: str(v) for k, v in secret_env.items()})
        self.env.setdefault("NODE_ENV", "production")
        self.env["PORT"] = str(params["port"])
        self.zero_downtime = bool(params.get("zero_downtime"))
        self.runner = releases.Runner(self.masker)
        self.progress = None
        self.started = time.monotonic()
        self.result = {"changed": False, "project": params["project"], "app": params["app"]}

    # -- shared steps ----------------------------------------------------------------

    def finish(self, **values):
        self.result.update(values)
        self.result["duration"] = round(time.monotonic() - self.started, 3)
        self.result["live_release"] = self.paths.live_release()
        self.result["previous_release"] = self.paths.previous_release()
        self.result["log"] = self.runner.text()
        return self.result

    def check_health(self, service):
        self.runner.mark("health check")
        return releases.health_check(service, service.spec.port, self.params["health_path"],
                                     self.params["health_timeout"])

    def env_for(self, port):
        return dict(self.env, PORT=str(port))

    def activate(self, release_id, discard_on_failure=True):
        """Put ``release_id`` live with the new environment and start command; returns
        (the release it replaced or None, the health check's HTTP status)."""
        if self.zero_downtime:
            return self.activate_in_slot(release_id, discard_on_failure)
        return self.activate_in_place(release_id, discard_on_failure)

    def activate_in_place(self, release_id, discard_on_failure=True):
        """Make ``release_id`` live, restart, check. On any failure, a kill included, put
        back the release and the service files that were live, restart them and (unless
        killed) check them again, then re-raise.
        """
        service = releases.service(self.runner, self.paths, self.paths.single(self.params["port"]))
        saved = service.snapshot()
        before_previous = self.paths.previous_release()
        live = self.paths.live_release()
        replaced = None
        # The app ran in slots (it had domains): they give way to the one service, but stay
        # on disk until it is healthy, so a failure can start the live slot again.
        slot_live = self.paths.live_port()
        slots = self.paths.slot_ports()
        try:
            changed = service.install(self.env, self.params["start_command"])
            if release_id != live:
                replaced = self.paths.switch(release_id)
                changed = True
            for port in slots:
                releases.service(self.runner, self.paths, self.paths.slot(port)).stop()
            if not (changed or slots):
                status = self.check_health(service)
                self.result["live_port"] = self.params["port"]
                return live, status
            self.result["changed"] = True
            service.restart()
            status = self.check_health(service)
            if slots or slot_live is not None:
                self.remove_slots(keep=None)
            self.result["live_port"] = self.params["port"]
            return replaced, status
        except BaseException as failure:
            if slot_live is not None:
                self.undo_to_slot(failure, release_id, live, before_previous, service, slot_live, discard_on_failure)
            else:
                self.undo(failure, release_id, live, before_previous, service, saved, discard_on_failure)
            raise

    def undo_to_slot(self, failure, release_id, live, before_previous, service, slot_live, discard):
        """Put back the slot that was live before an app without domains failed to start in
        place: the one service goes, the live slot runs again."""
        killed = not isinstance(failure, StepFailed)
        try:
            if release_id != live:
                self.result["failed_release"] = release_id
                self.paths.switch_back(live, before_previous)
            service.remove("start")
            slot = releases.service(self.runner, self.paths, self.paths.slot(slot_live))
            slot.restart()
            if killed:
                return
            try:
                self.check_health(slot)
                failure.rolled_back = "the slot on port %d (%s) serves again" % (slot_live, live)
            except StepFailed as second:
                failure.rolled_back = "the slot on port %d (%s) was started again, but does not answer " \
                                      "either: %s" % (slot_live, live, second)
        finally:
            if discard and release_id != live:
                shutil.rmtree(self.paths.release_path(release_id), ignore_errors=True)

    def activate_in_slot(self, release_id, discard_on_failure=True):
        """Start ``release_id`` in the slot that is not live, check it there, and only then
        make it live; the live slot is never touched (see :meth:`retire` for its end)."""
        from ansible_collections.dpl.platform.plugins.module_utils import validation

        paths, port = self.paths, self.params["port"]
        ports = validation.app_ports(port)
        live, live_port = paths.live_release(), paths.live_port()
        legacy = live_port is None and os.path.exists(paths.unit_file)
        if live_port in ports:
            current = releases.service(self.runner, paths, paths.slot(live_port))
            if release_id == live and current.up_to_date(self.env_for(live_port), self.params["start_command"],
                                                         release_id):
                self.result.update(live_port=live_port, retire=self.stale_services(live_port))
                return live, self.check_health(current)
            candidate = ports[1] if live_port == ports[0] else ports[0]
        else:
            # No slot live yet: the app's first deploy, one run in place until now (on its
            # port), or a port changed in the registry.
            candidate = ports[1] if legacy else ports[0]
        service = releases.service(self.runner, paths, paths.slot(candidate))
        self.result["changed"] = True
        try:
            service.stop()  # what an interrupted deploy may have left in this slot
            if live_port is not None and os.path.exists(paths.unit_file):
                # The one service of the app's days in place, which a retire never stopped.
                releases.service(self.runner, paths, paths.single(port)).remove("start")
            if releases.port_in_use(candidate):  # not ours: another app, or something by hand
                raise StepFailed("start", "port %d, the slot the new release was to start in, is taken by "
                                          "another program in the container: give the app a port P such that "
                                          "P and P+1 are free" % candidate)
            service.install(self.env_for(candidate), self.params["start_command"], release_id)
            service.restart()
            status = self.check_health(service)
        except BaseException as failure:
            if release_id != live:
                self.result["failed_release"] = release_id
            try:
                service.remove("start")
            finally:
                if discard_on_failure and release_id != live:
                    shutil.rmtree(self.paths.release_path(release_id), ignore_errors=True)
            if isinstance(failure, StepFailed):
                failure.rolled_back = ("the live release %s kept serving on port %s; nothing was switched"
                                       % (live, live_port or port) if live else
                                       "there was no earlier release; nothing serves the app")
            raise
        # Healthy: it becomes the live release and the live slot. The old slot still runs
        # until the proxy has moved (retire); at boot, only the live slot starts.
        replaced = paths.switch(release_id) if release_id != live else None
        paths.set_live_port(candidate)
        service.enable(True)
        if live_port is not None:
            releases.service(self.runner, paths, paths.slot(live_port)).enable(False)
        elif legacy:
            releases.service(self.runner, paths, paths.single(port)).enable(False)
        self.result.update(live_port=candidate, retire=self.stale_services(candidate))
        return replaced, status

    def stale_services(self, live_port):
        """What still runs or lies around besides the live slot, for :meth:`retire` to stop:
        the other slots' ports, and "in place" for the app's one service of before."""
        stale = [str(port) for port in self.paths.slot_ports() if port != live_port]
        return stale + (["in place"] if os.path.exists(self.paths.unit_file) else [])

    def remove_slots(self, keep):
        """Stop and delete every slot's service but ``keep``'s (None: every one)."""
        retired = []
        for port in self.paths.slot_ports():
            if port != keep:
                releases.service(self.runner, self.paths, self.paths.slot(port)).remove("retire")
                retired.append(port)
        if keep is None:
            self.paths.set_live_port(None)
            if os.path.lexists(self.paths.slot_template_file) and not self.paths.slot_ports():
                os.unlink(self.paths.slot_template_file)
                releases.service(self.runner, self.paths, self.paths.slot(self.params["port"])).reload()
        return retired

    def undo(self, failure, release_id, live, before_previous, service, saved, discard):
        """Put back what :meth:`activate_in_place` changed; say what was done on ``failure``."""
        killed = not isinstance(failure, StepFailed)
        if release_id != live:
            self.result["failed_release"] = release_id
        try:
            if live:
                if release_id != live:
                    self.paths.switch_back(live, before_previous)
                service.restore(saved)
                service.restart()
                if killed:
                    return
                try:
                    self.check_health(service)
                    failure.rolled_back = "switched back to %s, which answers again" % live
                except StepFailed as second:
                    failure.rolled_back = "switched back to %s, but it does not answer either: %s" % (live, second)
            else:
                service.stop()
                if os.path.lexists(self.paths.live):
                    os.unlink(self.paths.live)
                if not killed:
                    failure.rolled_back = "there was no earlier release to switch back to; the app is stopped"
        finally:
            # A new build that failed goes; a release rolled back to stays (it served before).
            if discard and release_id != live:
                shutil.rmtree(self.paths.release_path(release_id), ignore_errors=True)

    def build_release(self, commit, fill):
        """Make a new release next to the live one, never in place: ``fill(directory)``
        puts its files there and returns its description, then the deploy step runs in it.
        Only a complete release gets its final name; a failed build leaves nothing."""
        self.runner.mark("build")
        release_id = self.paths.new_release_id(commit)
        building = self.paths.release_path(release_id) + ".tmp"
        try:
            info = fill(building)
            releases.write_release_info(building, info)
            self.result["deploy_step"] = releases.run_deploy_step(
                self.runner, building, self.params["deploy_script"], self.env, self.params["script_timeout"])
            os.rename(building, self.paths.release_path(release_id))
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        return release_id

    def prune(self):
        removed = self.paths.prune_releases(self.params["keep_releases"])
        if removed:
            self.result["removed_releases"] = removed

    # -- deploy ----------------------------------------------------------------------

    def deploy(self):
        params, paths = self.params, self.paths
        if self.check_mode:
            return self.deploy_plan()
        paths.ensure()
        if params.get("progress_job"):
            self.runner.progress = releases.Progress(paths.progress, params["progress_job"])
        self.runner.mark("lock")
        with releases.AppLock(paths.lock, params["lock_timeout"]):
            adopted = paths.adopt_legacy_live_dir()
            if adopted:
                self.result["adopted_release"] = adopted
            live = paths.live_release()
            ref = self.fetch()
            commit = releases.resolve(self.runner, paths, ref)
            self.result.update(commit=commit, ref=ref)
            live_commit = paths.release_info(live).get("commit") if live else None
            if live_commit == commit:
                # Redeploy of the live commit: nothing to build; restart only for a new
                # environment or start command (put back if it fails), then verify health.
                _unused, status = self.activate(live)
                return self.finish(release=live, health_status=status, skipped_build=True)

            if live:
                self.runner.mark("backup")
                self.result["backup"] = releases.backup(paths, live, params["keep_backups"])
                self.result["changed"] = True

            def from_git(building):
                releases.export(self.runner, paths, commit, building, params["git_timeout"])
                return {"commit": commit, "ref": ref, "repo": params["repo"], "source": "git",
                        "created": _now()}

            release_id = self.build_release(commit, from_git)
            # The new environment and start command take effect with the new release only.
            replaced, status = self.activate(release_id)
            self.prune()
            return self.finish(release=release_id, replaced_release=replaced, health_status=status,
                               skipped_build=False)

    def fetch(self):
        """Fetch the repository, through the project's deploy key or token; returns the ref
        to deploy. Host keys seen for the first time are returned for the registry to pin."""
        params, access = self.params, self.access
        access.prepare(params["repo"])
        env = access.env(params["repo"])
        try:
            releases.fetch(self.runner, self.paths, params["repo"], params["git_timeout"], env)
            ref = params["ref"]
            if ref is None:
                ref = releases.default_branch(self.runner, self.paths, params["repo"], params["git_timeout"], env)
                self.result["default_branch"] = ref
            return ref
        except StepFailed as failure:
            reason = access.explain(params["repo"], failure.output, params["project"])
            if reason is None:
                raise
            raise StepFailed("fetch", reason, failure.output) from None
        finally:
            new_keys = access.new_host_keys()
            if new_keys:
                self.result["new_host_keys"] = new_keys

    def deploy_plan(self):
        live = self.paths.live_release()
        return self.finish(changed=True, release=None, replaced_release=live,
                           msg="would fetch %s at %s and deploy it" % (
                               self.params["repo"], self.params["ref"] or "its default branch"))

    # -- rollback --------------------------------------------------------------------

    def rollback(self):
        paths = self.paths
        if self.check_mode:
            live, previous = paths.live_release(), paths.previous_release()
            if not previous:
                raise StepFailed("rollback", "there is no previous release to roll back to (live: %s)" % live)
            return self.finish(changed=True, release=previous, replaced_release=live)
        with releases.AppLock(paths.lock, self.params["lock_timeout"]):
            # Read under the lock: a deploy that just finished may have moved both links.
            live, previous = paths.live_release(), paths.previous_release()
            if not previous:
                raise StepFailed("rollback", "there is no previous release to roll back to (live: %s)" % live)
            # No rebuild: the previous release is complete on disk, so this works offline.
            replaced, status = self.activate(previous, discard_on_failure=False)
            return self.finish(release=previous, replaced_release=replaced, health_status=status,
                               commit=paths.release_info(previous).get("commit"))

    # -- restore ---------------------------------------------------------------------

    def restore(self, backup_name):
        paths = self.paths
        archive = os.path.join(paths.backups, backup_name)
        if os.path.basename(backup_name) != backup_name or not os.path.isfile(archive):
            raise StepFailed("restore", "no backup named %r in %s (list them with the app_info module "
                                        "or `dpl app backups`)" % (backup_name, paths.backups))
        releases.check_archive(archive)
        if self.check_mode:
            return self.finish(changed=True, backup=backup_name)
        # A container made again (its backup brought from the controller) has none of the
        # app's folders yet, as before a first deploy.
        paths.ensure()
        with releases.AppLock(paths.lock, self.params["lock_timeout"]):
            commit = releases.name_parts(backup_name)[1] or "unknown"
            restored = {}

            def from_backup(building):
                releases.extract_backup(archive, building)
                info = paths.release_info(os.path.basename(building))
                info.update(source="backup:%s" % backup_name, restored=_now())
                restored.update(info)
                return info

            release_id = self.build_release(commit, from_backup)
            replaced, status = self.activate(release_id)
            self.prune()
            return self.finish(release=release_id, replaced_release=replaced, health_status=status,
                               backup=backup_name, commit=restored.get("commit"))

    # -- the end of the old slot --------------------------------------------------------

    def retire(self, drain):
        """After the proxy has moved to the live slot: wait ``drain`` seconds for the requests
        the old slot still answers, then stop and delete every service of the app but the
        live slot's (the old slot, and the one service of an app that ran in place before)."""
        paths = self.paths
        live_port = paths.live_port()
        legacy = os.path.exists(paths.unit_file)
        others = [port for port in paths.slot_ports() if port != live_port]
        if live_port is None or not (others or legacy):
            return self.finish(changed=False, live_port=live_port, retired=[])
        if self.check_mode:
            return self.finish(changed=True, live_port=live_port,
                               retired=[str(port) for port in others] + (["in place"] if legacy else []))
        with releases.AppLock(paths.lock, self.params["lock_timeout"]):
            # Read again under the lock: what a deploy that just ended made live stays (and an
            # app that went back to one service in place meanwhile keeps it).
            live_port = paths.live_port()
            if live_port is None:
                return self.finish(changed=False, live_port=None, retired=[])
            time.sleep(drain)
            retired = [str(port) for port in self.remove_slots(keep=live_port)]
            if os.path.exists(paths.unit_file):
                releases.service(self.runner, paths, paths.single(self.params["port"])).remove("retire")
                retired.append("in place")
        return self.finish(changed=True, live_port=live_port, retired=retired)

    # -- removal ---------------------------------------------------------------------

    def remove(self):
        """Take the app out of service: its service stopped, disabled and deleted, every
        file a deploy made removed (the paths come from :class:`releases.AppPaths`, the
        same definition deploys use); its backups are kept."""
        paths = self.paths
        present = [path for path in paths.removable() if os.path.lexists(path)]
        result = {"removed": present, "kept_backups": paths.backups}
        if self.check_mode or not present:
            return self.finish(changed=bool(present), **result)
        os.makedirs(os.path.dirname(paths.lock), mode=0o755, exist_ok=True)
        # Under the lock: a deploy still running would otherwise recreate what goes here.
        with releases.AppLock(paths.lock, self.params["lock_timeout"]):
            if releases.init_system():
                self.remove_slots(keep=None)
                releases.service(self.runner, paths, paths.single(self.params["port"])).remove()
            for path in paths.removable():
                if path == paths.lock:
                    continue
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                elif os.path.lexists(path):
                    os.unlink(path)
            os.unlink(paths.lock)
        # The project's deploy key and pins go with its last app in this container.
        if os.path.isdir(self.access.folder) and not self.project_has_apps():
            shutil.rmtree(self.access.folder)
            result["removed"].append(self.access.folder)
        return self.finish(changed=True, **result)

    def project_has_apps(self):
        """Whether another app of the project is still in the container (its live link)."""
        project_dir = os.path.dirname(self.paths.live)
        try:
            return any(not entry.startswith(".") for entry in os.listdir(project_dir))
        except OSError:
            return False

    # -- listing ---------------------------------------------------------------------

    def info(self):
        paths = self.paths
        live, previous = paths.live_release(), paths.previous_release()
        listed = []
        for release_id in paths.release_ids():
            info = paths.release_info(release_id)
            listed.append({"id": release_id, "commit": info.get("commit"), "ref": info.get("ref"),
                           "created": info.get("created"), "source": info.get("source"),
                           "size": releases.directory_size(paths.release_path(release_id)),
                           "live": release_id == live, "previous": release_id == previous})
        return self.finish(releases=listed, backups=releases.list_backups(paths), live_port=paths.live_port())


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def failure_result(pipeline, failure):
    """What a failed pipeline reports: the step, why, the output's end, what was undone."""
    message = "%s failed: %s" % (failure.step, failure)
    rolled_back = getattr(failure, "rolled_back", None)
    if rolled_back:
        message += "; " + rolled_back
    elif failure.step in ("lock", "fetch", "build", "deploy script", "restore"):
        message += "; the live release was not touched"
    if failure.output:
        message += "\n--- last lines ---\n" + pipeline.masker(failure.output)
    result = pipeline.finish(msg=message, failed_step=failure.step)
    if rolled_back:
        result["rolled_back"] = rolled_back
    return result


def app_argument_spec(**extra):
    """The options of the dpl.platform.app doc fragment, plus ``extra``."""
    spec = dict(
        project=dict(type="str", required=True),
        app=dict(type="str", required=True),
        port=dict(type="int", default=3000),
        zero_downtime=dict(type="bool", default=False),
        start_command=dict(type="str", default="npm start"),
        deploy_script=dict(type="str"),
        env=dict(type="dict", default={}),
        secret_env=dict(type="dict", default={}, no_log=True),
        health_path=dict(type="str", default="/"),
        health_timeout=dict(type="int", default=30),
        keep_releases=dict(type="int", default=5),
        keep_backups=dict(type="int", default=5),
        lock_timeout=dict(type="int", default=120),
        script_timeout=dict(type="int", default=900),
        git_timeout=dict(type="int", default=300),
        apps_root=dict(type="path", default=releases.APPS_ROOT),
        backups_root=dict(type="path", default=releases.BACKUPS_ROOT),
        deploy_root=dict(type="path", default=releases.DEPLOY_ROOT),
    )
    spec.update(extra)
    return spec


def validate_params(params):
    """Run the module's parameters through DPL's validation layer (raises ValidationError)."""
    from ansible_collections.dpl.platform.plugins.module_utils import validation

    validation.name(params["project"], "project")
    validation.app_name(params["app"], "app")
    validation.app_port(params["port"], "port")
    validation.command(params["start_command"], "start_command")
    if params.get("deploy_script"):
        validation.command(params["deploy_script"], "deploy_script")
    for key, value in (params.get("env") or {}).items():
        validation.env_name(key, "env")
        validation.env_value(value, "env.%s" % key)
    for key, value in (params.get("secret_env") or {}).items():
        validation.env_name(key, "secret_env")
        validation.secret_value(value, "secret_env.%s" % key)
    validation.url_path(params["health_path"], "health_path")
    validation.keep_count(params["keep_releases"], "keep_releases")
    validation.keep_count(params["keep_backups"], "keep_backups")
    for field in ("health_timeout", "lock_timeout", "script_timeout", "git_timeout"):
        validation.count(params[field], field, 1, 86400)
    if params.get("repo") is not None:
        validation.repo_url(params["repo"], "repo")
    if params.get("ref") is not None:
        validation.git_ref(params["ref"], "ref")
    access = params.get("git_access") or {}
    for line in access.get("known_hosts") or ():
        validation.host_key(line, "git_access.known_hosts")
    if access.get("token"):
        validation.git_token(access["token"], "git_access.token")
    if access.get("token_user"):
        validation.git_user(access["token_user"], "git_access.token_user")
    if params.get("backup") is not None:
        validation.relative_path(params["backup"], "backup")
        if "/" in params["backup"] or not params["backup"].endswith(".tar.gz"):
            raise validation.ValidationError("backup", params["backup"],
                                             "must be the file name of a backup, such as 20261128T101500Z-abc.tar.gz")


def run_module(module, action):
    """Shared main() of the app_* modules: validate, run one pipeline, report."""
    from ansible_collections.dpl.platform.plugins.module_utils import validation

    try:
        validate_params(module.params)
    except validation.ValidationError as exc:
        module.fail_json(msg=str(exc))
    pipeline = Pipeline(module.params, module.check_mode)
    before = {"release": pipeline.paths.live_release()}
    before["commit"] = pipeline.paths.release_info(before["release"]).get("commit") if before["release"] else None
    try:
        result = action(pipeline)
    except StepFailed as failure:
        module.fail_json(**failure_result(pipeline, failure))
    except (OSError, ValueError) as exc:
        module.fail_json(**failure_result(pipeline, StepFailed("deploy", "unexpected error: %s" % exc)))
    if result.get("changed"):
        result["diff"] = {"before": before, "after": {"release": result.get("release"),
                                                      "commit": result.get("commit")}}
    module.exit_json(**result)
