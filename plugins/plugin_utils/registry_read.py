# Copyright: (c) 2026, DPL maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One read of DPL's registry for the collection's lookups: open the file (never create it),
read, close, and turn the registry's errors into Ansible's with the registry's own advice."""

from __future__ import annotations

from ansible.errors import AnsibleError, AnsibleLookupError
from ansible.module_utils.common.text.converters import to_native

try:
    from dpl_web import registry as dpl_registry
except ImportError as exc:  # the plugins are documented and sanity-tested without the control plane
    dpl_registry = None
    DPL_IMPORT_ERROR = exc
else:
    DPL_IMPORT_ERROR = None


def read_registry(plugin, path, read):
    """``read(registry)`` on the registry at ``path`` (None: DPL's default one)."""
    if dpl_registry is None:
        raise AnsibleError(
            "the %s lookup needs DPL's control plane (the dpl_web package) in the Python that runs Ansible: "
            "run scripts/setup (import failed: %s)" % (plugin, to_native(DPL_IMPORT_ERROR)))
    try:
        registry = dpl_registry.Registry.open(path or None, create=False)
    except dpl_registry.RegistryError as exc:
        raise AnsibleLookupError(to_native(exc.explain())) from exc
    try:
        return read(registry)
    except (dpl_registry.NotFound, dpl_registry.RegistryError) as exc:
        raise AnsibleLookupError(to_native(exc.explain())) from exc
    finally:
        registry.close()
