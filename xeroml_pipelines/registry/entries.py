"""A registered export: a configuration `exports:` item, plus whether it runs and the
credentials stored with it. A stored credential stands where the item would name an environment
variable (`secrets: {secret_access_key: ...}` for `secret_access_key_env: ...`), and is
validated by the very same rules."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from xeroml_pipelines.config import ExportConfig
from xeroml_pipelines.config.messages import explain
from xeroml_pipelines.errors import ConfigError

# per provider, the credentials an entry may store: each stands for the `<name>_env` field
SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    "local": (),
    "s3": ("access_key_id", "secret_access_key", "session_token", "external_id"),
    "gcs": ("service_account_json",),
    "azure": ("connection_string", "sas_token", "account_key"),
}
# stands in for a stored credential while the item's rules check it (never stored, never read)
_PLACEHOLDER = "XEROML_STORED_{}"


@dataclass(frozen=True)
class Entry:
    export: ExportConfig  # as configured; a stored credential's `*_env` field is unset
    enabled: bool = True
    secret_names: tuple[str, ...] = ()
    # the credentials' values: given when the entry is added, None when read back (the store
    # opens them only for a run or a probe)
    secrets: Mapping[str, str] | None = field(default=None, repr=False)


def parse_entry(raw: Any, source: str, stored_secrets: tuple[str, ...] = ()) -> Entry:
    """An entry from YAML or JSON (an `exports:` item, `enabled:` and `secrets:` optional),
    checked as the configuration checks its items; the message names `source` and each field."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: an entry is a mapping shaped like an `exports:` item, got {type(raw).__name__}")
    item = dict(raw)
    enabled = item.pop("enabled", True)
    secrets = item.pop("secrets", None) or {name: "(stored)" for name in stored_secrets}
    if not isinstance(enabled, bool):
        raise ConfigError(f"{source}: enabled: must be true or false")
    if not isinstance(secrets, dict) or not all(isinstance(v, str) and v for v in secrets.values()):
        raise ConfigError(f"{source}: secrets: a mapping of credential names to non-empty strings")
    destination = item.get("destination")
    if secrets and isinstance(destination, dict):
        provider = str(destination.get("provider"))
        allowed = SECRET_FIELDS.get(provider, ())
        for name in secrets:
            if name not in allowed:
                raise ConfigError(
                    f"{source}: secrets.{name}: not a credential of provider {provider!r}"
                    + (f" (it stores: {', '.join(allowed)})" if allowed else " (it stores none)")
                )
            if destination.get(f"{name}_env"):
                raise ConfigError(f"{source}: secrets.{name}: the entry also names {name}_env; give one of them")
        item["destination"] = {**destination, **{f"{n}_env": _PLACEHOLDER.format(n.upper()) for n in secrets}}
    try:
        export = ExportConfig.model_validate(item)
    except ValidationError as e:
        raise ConfigError(explain(e, ExportConfig, source, item)) from None
    if secrets:
        unset = {f"{n}_env": None for n in secrets}
        export = export.model_copy(update={"destination": export.destination.model_copy(update=unset)})
    return Entry(export, enabled, tuple(sorted(secrets)), None if stored_secrets else dict(secrets))


def stored_form(entry: Entry) -> dict[str, Any]:
    """What the registry stores in plain text: the item without credentials (nor the fields a
    stored credential stands for)."""
    return entry.export.model_dump(mode="json", exclude_none=True)


def from_stored(spec: Mapping[str, Any], enabled: bool, secret_names: tuple[str, ...], name: str) -> Entry:
    """An entry read back, checked again by today's rules; its credentials stay sealed."""
    return parse_entry({**spec, "enabled": enabled}, f"registry entry {name!r}", secret_names)
