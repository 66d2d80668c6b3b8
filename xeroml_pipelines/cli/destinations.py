"""`xeroml destinations ...`: the export registry from the command line. Credentials are taken
from the entry's `secrets:` (or typed at a prompt with `--secret NAME`), stored encrypted, and
never printed: `show` names them only."""

from __future__ import annotations

import argparse
import getpass
import sys
import uuid
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xeroml_pipelines.cli.export import UsageError

if TYPE_CHECKING:
    from xeroml_pipelines.registry.store import Registry


def _registry(args: argparse.Namespace) -> Registry:
    from xeroml_pipelines.registry.store import Registry

    return Registry(args.registry).create()


def _read(path: str) -> tuple[Any, str]:
    from xeroml_pipelines.config.loading import read_yaml

    if path == "-":
        return read_yaml(sys.stdin.read(), "<stdin>"), "<stdin>"
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"no such file: {path}")
    return read_yaml(file.read_text(), path), path


def cmd_add(args: argparse.Namespace) -> int:
    from xeroml_pipelines.registry.entries import parse_entry

    raw, source = _read(args.file)
    if isinstance(raw, dict) and args.secret:
        secrets = dict(raw.get("secrets") or {})
        for name in args.secret:  # typed, not echoed, never in the shell's history
            secrets[name] = getpass.getpass(f"{name}: ")
        raw = {**raw, "secrets": secrets}
    entry = parse_entry(raw, source)
    _registry(args).put([entry], replace=args.replace)
    print(f"registered {entry.export.name} (project {entry.export.project_id}, {entry.export.destination.location})")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from xeroml_pipelines.registry.entries import parse_entry

    raw, source = _read(args.file)
    if isinstance(raw, dict) and isinstance(raw.get("exports"), list):
        raw = raw["exports"]  # a whole configuration file: its exports
    if not isinstance(raw, list) or not raw:
        raise UsageError(f"{source}: expected a YAML list of entries shaped like `exports:` items")
    entries = [parse_entry(item, f"{source}, entry {i}") for i, item in enumerate(raw)]
    _registry(args).put(entries, replace=args.replace)
    print(f"registered {len(entries)} export(s) from {source}")
    return 0


# missed windows `show` lists; the rest are counted
_SHOWN = 20


def cmd_list(args: argparse.Namespace) -> int:
    registered = _registry(args).summaries()
    if not registered:
        print("no registered exports (add one with `xeroml destinations add FILE`)")
        return 0
    rows = [("NAME", "PROJECT", "DESTINATION", "CADENCE", "TABLES", "STATE")]
    for r in registered:
        state = "enabled" if r.enabled else "disabled"
        if r.consecutive_failures:
            state += f", {r.consecutive_failures} failure(s)"
        rows.append((r.name, r.project_id, r.location, r.cadence, ",".join(r.tables), state))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    import yaml

    from xeroml_pipelines.registry.runs import missed_of

    registry = _registry(args)
    r = registry.get(args.name)
    item = r.entry.export.model_dump(mode="json", exclude_none=True)
    print(yaml.safe_dump(item, sort_keys=False).rstrip())
    for name in r.entry.secret_names:
        print(f"stored credential: {name} (encrypted)")
    if r.entry.enabled:
        state = "enabled"
    else:
        state = "disabled by the platform" if r.disabled_by == "platform" else "disabled by its owner"
    print(f"state: {state}" + (f" ({r.disabled_reason})" if r.disabled_reason else ""))
    print(f"consecutive refused runs: {r.consecutive_failures}")
    if r.last_error:
        print(f"last error: {r.last_error}")
    missed = missed_of(registry, args.name)
    for m in missed[:_SHOWN]:
        print(f"missed: {m.table} {m.partition} ({m.attempts} attempt(s): {m.error})")
    if len(missed) > _SHOWN:
        print(f"missed: ... and {len(missed) - _SHOWN} more window(s)")
    if missed and r.entry.enabled:
        print("missed windows are exported again by the fleet's catch-up sensor, oldest first")
    elif missed:
        print("enable it (`xeroml destinations enable`) once its destination is fixed: its missed windows are caught up")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    """Writes, reads back and removes a probe object under the entry's prefix, as its runs would."""
    from xeroml_pipelines.registry.endpoints import check_destination

    registry = _registry(args)
    r = registry.get(args.name)
    destination = r.entry.export.destination
    secrets = registry.open_secrets(args.name)
    check_destination(r.entry.export, secrets)  # again: a name may resolve elsewhere by now
    key = f"{destination.prefix}/_xeroml_probe/{uuid.uuid4().hex}".lstrip("/")
    payload = b"xeroml destination probe\n"
    with closing(destination.with_credentials(secrets)) as opened:
        opened.write_small(key, payload)
        try:
            if opened.read_bytes(key) != payload:
                print(f"{args.name}: FAILED: the probe object read back differs", file=sys.stderr)
                return 1
        finally:
            opened.delete(key)
    print(f"{args.name}: ok: wrote, read and removed a probe object in {destination.location}")
    return 0


def cmd_enable(args: argparse.Namespace) -> int:
    _registry(args).set_enabled(args.name, True)
    print(f"{args.name}: enabled")
    return 0


def cmd_disable(args: argparse.Namespace) -> int:
    _registry(args).set_enabled(args.name, False, args.reason)
    print(f"{args.name}: disabled")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    _registry(args).remove(args.name)
    print(f"{args.name}: removed")
    return 0


def cmd_new_key(args: argparse.Namespace) -> int:
    from xeroml_pipelines.registry.keyring import KEYS_ENV, new_key

    print(new_key())
    print(
        f"put it first in {KEYS_ENV} (comma-separated, newest first), then run `xeroml destinations rotate-key`", file=sys.stderr
    )
    return 0


def cmd_rotate_key(args: argparse.Namespace) -> int:
    rewritten = _registry(args).rotate()
    print(f"re-encrypted the credentials of {rewritten} export(s) under the newest key")
    return 0


def add_parser(sub: Any, verbose: argparse.ArgumentParser) -> None:
    top = sub.add_parser("destinations", help="the registry of per-project exports (add, import, list, show, test, ...)")
    top.add_argument("--registry", help="SQLAlchemy URL (default: $XEROML_REGISTRY_URL, else ./xeroml-registry.sqlite)")
    cmds = top.add_subparsers(required=True)

    def command(name: str, fn: Any, help: str, needs_name: bool = True) -> argparse.ArgumentParser:
        p = cmds.add_parser(name, parents=[verbose], help=help)
        if needs_name:
            p.add_argument("name")
        p.set_defaults(fn=fn)
        return p

    p = command("add", cmd_add, "register one export from a YAML mapping shaped like an `exports:` item", False)
    p.add_argument("file", help="the entry's YAML file, or - for standard input")
    p.add_argument("--secret", action="append", help="prompt for this credential (e.g. secret_access_key); repeatable")
    p.add_argument("--replace", action="store_true", help="overwrite an entry of the same name")
    p = command("import", cmd_import, "register a YAML list of `exports:` items (all or none)", False)
    p.add_argument("file")
    p.add_argument("--replace", action="store_true", help="overwrite entries of the same names")
    command("list", cmd_list, "list the registered exports and their state", False)
    command("show", cmd_show, "one entry: its settings, the names of its stored credentials, its state")
    command("test", cmd_test, "write, read back and remove a probe object in the entry's destination")
    command("enable", cmd_enable, "let the entry's runs export again")
    p = command("disable", cmd_disable, "stop exporting the entry (kept, with the reason)")
    p.add_argument("--reason", default="disabled by an operator")
    command("remove", cmd_remove, "delete the entry (its files stay where they are)")
    command("new-key", cmd_new_key, "print a new key for XEROML_REGISTRY_KEYS", False)
    command("rotate-key", cmd_rotate_key, "re-encrypt every stored credential under the newest key", False)
