"""The ``dpl`` command line."""

from __future__ import annotations

import argparse
import json
import sys

from dpl_web import paths, registry


def cmd_init(args: argparse.Namespace) -> int:
    """Create the registry (or migrate it) and say whether anything changed."""
    path = paths.registry_path()
    existed = path.exists()
    before = 0
    if existed:
        conn = registry.connect_readonly(path)
        before = registry.schema_version(conn)
        conn.close()
    conn = registry.connect(path)
    after = registry.schema_version(conn)
    conn.close()
    report = {"path": str(path), "created": not existed, "migrated": existed and before != after,
              "schema_version": after}
    report["changed"] = report["created"] or report["migrated"]
    if args.json:
        print(json.dumps(report))
    else:
        state = "created" if report["created"] else "migrated" if report["migrated"] else "up to date"
        print(f"registry {path}: {state} (schema version {after})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dpl", description="DPL: many web apps on one LXD host.")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    init = commands.add_parser("init", help="create or migrate the registry")
    init.set_defaults(func=cmd_init)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except registry.RegistryError as exc:
        print(f"dpl: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
