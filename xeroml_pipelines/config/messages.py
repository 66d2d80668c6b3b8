"""Configuration errors in the user's words: the YAML path of the field, what is wrong, and the
allowed values, instead of pydantic's own phrasing ("Input tag ... does not match", "Extra
inputs are not permitted")."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

_DATE_ERRORS = ("date_parsing", "date_from_datetime_parsing", "date_from_datetime_inexact", "date_type")


def _field_names(model: type[BaseModel]) -> set[str]:
    """Every field name of the configuration models reachable from `model`."""
    names: set[str] = set()
    seen: set[type] = set()

    def walk(cls: type[BaseModel]) -> None:
        if cls in seen:
            return
        seen.add(cls)
        for name, field in cls.model_fields.items():
            names.add(name)
            stack: list[Any] = [field.annotation]
            while stack:
                t = stack.pop()
                if isinstance(t, type) and issubclass(t, BaseModel):
                    walk(t)
                stack.extend(getattr(t, "__args__", ()))

    walk(model)
    return names


def _choices(expected: str) -> str:
    """pydantic's "'a', 'b' or 'c'" as "a, b, c"."""
    return ", ".join(part.strip().strip("'") for part in expected.replace(" or ", ", ").split(","))


def _value(e: ErrorDetails) -> str:
    value = e.get("input")
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _yaml_path(loc: tuple[int | str, ...], raw: Any) -> tuple[list[str], bool]:
    """The error's location as the user wrote it (pydantic puts the tag of a tagged union, a
    provider or a warehouse type, into the location; the YAML has no such level), and whether
    the YAML gives a value there."""
    path, node, given = [], raw, True
    for part in loc:
        inside = part in node if isinstance(node, dict) else isinstance(node, list) and isinstance(part, int) and part < len(node)
        if inside:
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and part != loc[-1]:
            continue  # a union tag
        else:
            given = False
        path.append(str(part))
    return path, given


def describe(e: ErrorDetails, model: type[BaseModel], raw: Any = None) -> tuple[str, str]:
    """(YAML path, message) of one validation error."""
    loc, given = _yaml_path(e["loc"], raw) if raw is not None else ([str(p) for p in e["loc"]], True)
    kind, ctx = e["type"], e.get("ctx") or {}
    # a Dagster resource (a destination, a warehouse) takes a missing field as None
    if kind == "missing" or (not given and e.get("input") is None):
        return ".".join(loc), "required field missing"
    if kind == "union_tag_invalid":
        field = ctx["discriminator"].strip("'")
        return ".".join([*loc, field]), f"{ctx['tag']!r} is not one of: {_choices(ctx['expected_tags'])}"
    if kind == "union_tag_not_found":
        field = ctx["discriminator"].strip("'")
        return ".".join([*loc, field]), "required field missing"
    if kind == "literal_error":
        return ".".join(loc), f"{_value(e)} is not one of: {_choices(ctx['expected'])}"
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(loc[-1], sorted(_field_names(model)), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return ".".join(loc), f"unknown field{hint}"
    if kind in _DATE_ERRORS:
        why = f": {ctx['error']}" if ctx.get("error") else ""
        return ".".join(loc), f"{_value(e)} is not a date (YYYY-MM-DD){why}"
    if kind in ("value_error", "assertion_error"):
        return ".".join(loc) or "(top level)", str(ctx.get("error", e["msg"]))
    message = e["msg"]
    for phrase in ("Input should", "String should", "Value should"):
        message = message.replace(phrase, "must")
    return ".".join(loc) or "(top level)", f"{message} (got {_value(e)})"


def explain(error: ValidationError, model: type[BaseModel], source: str, raw: Any = None) -> str:
    lines = [f"invalid configuration in {source}:"]
    for e in error.errors():
        path, message = describe(e, model, raw)
        lines.append(f"  - {path}: {message}")
    return "\n".join(lines)
