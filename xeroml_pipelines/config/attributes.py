"""The configuration as a Dagster component's attributes (a `defs.yaml`): the same fields and
models as `XEROML_CONFIG`'s file, with Dagster's templates (`{{ env.NAME }}`) in any value.

A secret may be written the way Dagster components write one, `password: "{{ env.NAME }}"`: it
is read as `password_env: NAME`, so the secret itself still never enters the configuration
(rendered, it would be a plain string in the resource's config, shown by the UI); Dagster's
`EnvVar` reads it when a run needs it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from pydantic import ValidationError

from xeroml_pipelines.config.base import ConfigError
from xeroml_pipelines.config.exports import XeroMLConfig
from xeroml_pipelines.config.messages import explain

_ENV_TEMPLATE = re.compile(r"^\{\{\s*env\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$")
_ANY_TEMPLATE = r"\{\{.*\}\}"
_SCALARS = ("integer", "number", "boolean")


@cache
def _secret_fields() -> frozenset[str]:
    """The secrets' short names: each `<name>_env` field of the models, without `_env`."""
    names: set[str] = set()

    def walk(schema: Any) -> None:
        if isinstance(schema, dict):
            names.update(k.removesuffix("_env") for k in schema.get("properties", {}) if k.endswith("_env"))
            for value in schema.values():
                walk(value)
        elif isinstance(schema, list):
            for value in schema:
                walk(value)

    walk(XeroMLConfig.model_json_schema())
    return frozenset(names)


def _secrets_as_names(raw: Any, path: str, source: str) -> Any:
    """`<secret>: "{{ env.NAME }}"` as `<secret>_env: NAME`; a secret written out is refused."""
    if isinstance(raw, list):
        return [_secrets_as_names(v, f"{path}.{i}", source) for i, v in enumerate(raw)]
    if not isinstance(raw, Mapping):
        return raw
    out: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"{path}.{key}" if path else str(key)
        if key in _secret_fields() and isinstance(value, str):
            match = _ENV_TEMPLATE.match(value)
            if not match:
                raise ConfigError(
                    f"invalid configuration in {source}: {where}: a secret is never written in the configuration: "
                    f'write {key}: "{{{{ env.NAME }}}}" (or {key}_env: NAME) with the secret in the environment variable NAME'
                )
            out[f"{key}_env"] = match.group(1)
        else:
            out[key] = _secrets_as_names(value, where, source)
    return out


def _rendered(raw: Any, render: Callable[[str], Any], path: str, source: str) -> Any:
    """Each template rendered; a value without one is kept as written. `{{ env.NAME }}` alone is
    the variable's text as it is (Dagster's rendering would read "12345" as a number)."""
    if isinstance(raw, list):
        return [_rendered(v, render, f"{path}.{i}", source) for i, v in enumerate(raw)]
    if isinstance(raw, Mapping):
        return {k: _rendered(v, render, f"{path}.{k}" if path else str(k), source) for k, v in raw.items()}
    if not isinstance(raw, str) or "{{" not in raw:
        return raw
    match = _ENV_TEMPLATE.match(raw)
    if not match:
        return render(raw)
    value = os.environ.get(match.group(1))
    if value is None:
        raise ConfigError(f"invalid configuration in {source}: {path}: the environment variable {match.group(1)} is not set")
    return value


def config_from_attributes(raw: Mapping[str, Any], render: Callable[[str], Any], source: str) -> XeroMLConfig:
    """The configuration a component's attributes declare: secrets taken as names, templates
    rendered (by `render`, Dagster's resolution), then validated as `XEROML_CONFIG`'s file is."""
    values = _rendered(_secrets_as_names(raw, "", source), render, "", source)
    try:
        return XeroMLConfig.model_validate(values)
    except ValidationError as e:
        raise ConfigError(explain(e, XeroMLConfig, source, values)) from None


def _tagged_as_branches(node: dict[str, Any]) -> None:
    """A tagged union (a destination's provider, a warehouse's type) as one branch per tag:
    JSON Schema's `oneOf` would say only "not valid under any of the given schemas", a branch
    names the wrong tag or the field inside the chosen one."""
    options = node.get("anyOf", ())
    optional = len(options) == 2 and {"type": "null"} in options
    union = next((o for o in options if "discriminator" in o), node) if optional else node
    tagged = union.get("discriminator")
    if not tagged or "oneOf" not in union:
        return
    tag, mapping = tagged["propertyName"], tagged["mapping"]
    for key in ("discriminator", "oneOf", "anyOf"):
        node.pop(key, None)
    branches = [
        {"if": {"type": "object", "properties": {tag: {"const": value}}, "required": [tag]}, "then": {"$ref": ref}}
        for value, ref in mapping.items()
    ]
    node.update(
        type=["object", "null"] if optional else "object",
        required=[tag],
        properties={tag: {"enum": list(mapping)}},
        allOf=branches,
    )


@cache
def attributes_json_schema() -> dict[str, Any]:
    """The attributes' JSON schema (`dg check yaml`, editors): the configuration's own, where a
    number or a flag may also be a template (a list or a mapping is written out, so that an error
    names the field inside it), and a secret may take its `{{ env.NAME }}` form."""
    schema = XeroMLConfig.model_json_schema()
    template = {"type": "string", "pattern": _ANY_TEMPLATE}
    secret = {"type": "string", "pattern": _ENV_TEMPLATE.pattern, "description": "{{ env.NAME }}: the secret's variable"}

    def allow_templates(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                allow_templates(item)
        if not isinstance(node, dict):
            return
        _tagged_as_branches(node)
        properties = node.get("properties")
        if isinstance(properties, dict):
            for name, prop in list(properties.items()):
                allow_templates(prop)
                if prop.get("type") in _SCALARS:
                    properties[name] = {"anyOf": [prop, template]}
                elif any(option.get("type") in _SCALARS for option in prop.get("anyOf", ())):
                    prop["anyOf"].append(template)
                if name.endswith("_env"):
                    properties[name.removesuffix("_env")] = secret
        for key, value in node.items():
            if key != "properties":
                allow_templates(value)

    allow_templates(schema)
    return schema
