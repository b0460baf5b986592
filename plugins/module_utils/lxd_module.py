# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every LXD-managing module shares: its connection options and its client."""

from __future__ import annotations

from ansible_collections.dpl.platform.plugins.module_utils.lxd import LXDClient, LXDError, LXDNotFound


def lxd_argument_spec():
    """The options of the ``dpl.platform.lxd_api`` doc fragment."""
    return dict(
        lxd_endpoint=dict(type="str", default="unix:"),
        lxd_project=dict(type="str", default="default"),
        client_cert=dict(type="path"),
        client_key=dict(type="path", no_log=False),
        server_cert=dict(type="path"),
        api_timeout=dict(type="int", default=30),
    )


def lxd_object_argument_spec(**extra):
    """Options of a module managing one LXD object: the lxd_object doc fragment, plus ``extra``."""
    spec = lxd_argument_spec()
    spec.update(
        name=dict(type="str", required=True),
        config=dict(type="dict", default={}),
        description=dict(type="str"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )
    spec.update(extra)
    return spec


def lxd_client(module):
    """Build the client from the module's parameters, failing the task cleanly."""
    params = module.params
    try:
        return LXDClient(
            endpoint=params["lxd_endpoint"],
            client_cert=params["client_cert"],
            client_key=params["client_key"],
            server_cert=params["server_cert"],
            project=params["lxd_project"] if params["lxd_project"] != "default" else None,
            timeout=params["api_timeout"],
        )
    except (LXDError, OSError, ValueError) as exc:
        module.fail_json(msg="cannot set up the LXD client: %s" % exc)


def _subset_differs(current, desired):
    """Keys of ``desired`` whose value differs in ``current`` (values compared as strings).

    LXD stores every config value as a string, so ``true`` and ``"true"`` are the same.
    """
    return sorted(key for key, value in desired.items()
                  if lxd_value(value) != current.get(key))


def lxd_value(value):
    """A value as LXD stores config: strings, booleans as true/false (dicts: each value)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return {key: lxd_value(item) for key, item in value.items()}
    return str(value)


def ensure_lxd_object(module, collection, name, state, config=None, devices=None,
                      description=None, create_only=None):
    """Make the LXD object ``collection/name`` match, with subset semantics.

    Only the config keys and devices given are managed; LXD's own keys (``volatile.*``, an
    address it picked) and devices nobody asked about are left as they are. ``create_only``
    holds attributes LXD cannot change after creation (a pool's driver, a network's type):
    a mismatch fails with a message instead of silently recreating the object.
    Exits the module.
    """
    client = lxd_client(module)
    path = "%s/%s" % (collection, name)
    config = {key: lxd_value(value) for key, value in (config or {}).items()}
    devices = {dev: lxd_value(spec) for dev, spec in (devices or {}).items()}
    result = dict(changed=False, name=name)
    try:
        try:
            current = client.get(path)
        except LXDNotFound:
            current = None

        if state == "absent":
            if current is not None:
                result["changed"] = True
                result["diff"] = dict(before={"name": name}, after={})
                if not module.check_mode:
                    client.sync_or_wait("DELETE", path)
            module.exit_json(**result)

        if current is None:
            body = dict(create_only or {}, name=name, config=config)
            if devices:
                body["devices"] = devices
            if description is not None:
                body["description"] = description
            result.update(changed=True, created=True,
                          diff=dict(before={}, after=dict(body)))
            if not module.check_mode:
                client.sync_or_wait("POST", collection, body)
                result["object"] = client.get(path)
            module.exit_json(**result)

        for key, value in (create_only or {}).items():
            if current.get(key) != value:
                module.fail_json(
                    msg="%s %r exists with %s=%r, not %r; LXD cannot change that in place: "
                        "remove it first or pick another name"
                        % (collection.rsplit("/", 1)[-1], name, key, current.get(key), value),
                    **result)

        current_config = current.get("config") or {}
        current_devices = current.get("devices") or {}
        changed_keys = _subset_differs(current_config, config)
        changed_devices = sorted(dev for dev, spec in devices.items()
                                 if current_devices.get(dev) != spec)
        description_changed = description is not None and current.get("description", "") != description
        if changed_keys or changed_devices or description_changed:
            patch = {}
            if changed_keys:
                patch["config"] = dict(current_config, **config)
            if changed_devices:
                patch["devices"] = dict(current_devices, **devices)
            if description_changed:
                patch["description"] = description
            result.update(
                changed=True,
                changed_keys=changed_keys,
                changed_devices=changed_devices,
                diff=dict(
                    before=dict(config={k: current_config.get(k) for k in changed_keys},
                                devices={d: current_devices.get(d) for d in changed_devices}),
                    after=dict(config={k: config[k] for k in changed_keys},
                               devices={d: devices[d] for d in changed_devices}),
                ),
            )
            if not module.check_mode:
                # PUT with the whole object: PATCH on profiles merges devices key by key,
                # which cannot replace a device whose type changed.
                body = {key: current.get(key) for key in ("config", "description", "devices")
                        if key in current}
                body.update(patch)
                client.sync_or_wait("PUT", path, body)
        result["object"] = client.get(path) if not module.check_mode else current
        module.exit_json(**result)
    except LXDError as exc:
        module.fail_json(msg="LXD refused the change to %s: %s" % (path, exc), **result)
    finally:
        client.close()
