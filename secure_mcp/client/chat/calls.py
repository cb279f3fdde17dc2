"""`/call TOOL JSON` and `--call TOOL JSON`: parsed and checked here, before anything is sent.

The check is the tool's own input schema (JSON Schema, with the `jsonschema` library the MCP SDK
already installs), so a missing or mistyped argument is one clear line naming it, instead of the
server's validation dump.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from secure_mcp.client.terminal import clean_line

if TYPE_CHECKING:
    from jsonschema.protocols import Validator
    from mcp.types import Tool


class UsageError(Exception):
    """A command typed wrongly; `str(exc)` says how to type it."""


def parse_call(text: str) -> tuple[str, dict[str, Any]]:
    """`TOOL [JSON object]` as the tool name and its arguments (`/call` and `--call`)."""
    name, _, raw = text.strip().partition(" ")
    if not name:
        raise UsageError('usage: /call TOOL {"argument": "value"}')
    try:
        arguments = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"the arguments are not valid JSON: {exc.msg} (column {exc.colno})"
        ) from exc
    if not isinstance(arguments, dict):
        raise UsageError('the arguments must be a JSON object, e.g. {"state": "CA"}')
    return name, arguments


def _type_of(schema: Mapping[str, Any]) -> str:
    """The JSON type(s) an argument takes, in words."""
    kind = schema.get("type")
    if isinstance(kind, str):
        return kind
    if isinstance(kind, list):
        return " or ".join(str(k) for k in kind)
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list):
            kinds = [_type_of(o) for o in options if isinstance(o, Mapping)]
            return " or ".join(dict.fromkeys(k for k in kinds if k != "any")) or "any"
    return "any"


def _number(value: object) -> str:
    return f"{value:g}" if isinstance(value, int | float) else _json(value)


def _json(value: object, limit: int = 40) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def argument_text(name: str, schema: object, *, optional: bool = False) -> str:
    """One argument for people: `latitude (number, -90 to 90: degrees north)`."""
    spec: Mapping[str, Any] = schema if isinstance(schema, Mapping) else {}
    facts = [_type_of(spec)] + (["optional"] if optional else [])
    low, high = spec.get("minimum"), spec.get("maximum")
    if low is not None and high is not None:
        facts.append(f"{_number(low)} to {_number(high)}")
    elif low is not None:
        facts.append(f"at least {_number(low)}")
    elif high is not None:
        facts.append(f"at most {_number(high)}")
    if isinstance(spec.get("enum"), list):
        facts.append("one of " + ", ".join(_json(v) for v in spec["enum"]))
    if "default" in spec:
        facts.append(f"default {_json(spec['default'])}")
    description = spec.get("description")
    about = f": {description.strip()}" if isinstance(description, str) and description else ""
    return clean_line(f"{name} ({', '.join(facts)}{about})")


def arguments_of(tool: Tool) -> tuple[dict[str, Any], list[str]]:
    """The tool's declared arguments (name -> schema) and the required ones."""
    schema = tool.input_schema
    properties = schema.get("properties")
    declared = dict(properties) if isinstance(properties, Mapping) else {}
    required = schema.get("required")
    needed = [r for r in required if isinstance(r, str)] if isinstance(required, list) else []
    return declared, needed


def signature(tool: Tool) -> str:
    """`get_forecast(latitude, longitude)`; optional arguments in brackets."""
    declared, needed = arguments_of(tool)
    names = [n if n in needed else f"[{n}]" for n in declared]
    return clean_line(f"{tool.name}({', '.join(names)})")


def find_tool(tools: Sequence[Tool], name: str) -> Tool | None:
    """The tool called `name`, if the server offers it."""
    return next((tool for tool in tools if tool.name == name), None)


def _find(tools: Sequence[Tool], name: str) -> Tool:
    tool = find_tool(tools, name)
    if tool is not None:
        return tool
    names = ", ".join(tool.name for tool in tools) or "none"
    raise UsageError(
        clean_line(
            f"no tool named {name} here; the server's tools: {names} (/tools shows their arguments)"
        )
    )


def check_call(tools: Sequence[Tool], name: str, arguments: Mapping[str, Any]) -> None:
    """UsageError (one line naming the problem) unless `name` is one of `tools` and `arguments`
    fit its input schema; nothing is sent until this passes.

    A schema the client cannot judge (invalid, remote references) is left to the server.
    """
    tool = _find(tools, name)
    validator = _validator(tool.input_schema)
    if validator is None:
        return  # an odd schema from the server: its own validation decides
    declared, needed = arguments_of(tool)
    shown = clean_line(name)
    for argument in needed:
        if argument not in arguments:
            text = argument_text(argument, declared.get(argument))
            raise UsageError(f"{shown} needs the argument {text}")
    extra = tool.input_schema.get("additionalProperties")
    closed = extra is None or extra is False  # pydantic's schemas: extras silently ignored
    if declared and closed and "patternProperties" not in tool.input_schema:
        for argument in arguments:
            if argument not in declared:
                raise UsageError(
                    clean_line(
                        f"{shown} has no argument {argument}; its arguments: " + ", ".join(declared)
                    )
                )
    problem = _schema_problem(validator, arguments)
    if problem is not None:
        raise UsageError(f"{shown}: {problem}")


def _validator(schema: Mapping[str, Any]) -> Validator | None:
    """A JSON Schema validator for `schema`, or None when the schema is not a valid one."""
    from jsonschema import exceptions, validators  # installed with mcp; loaded only here

    document = dict(schema)
    cls = validators.validator_for(document, default=validators.Draft202012Validator)
    try:
        cls.check_schema(document)
    except exceptions.SchemaError:
        return None
    return cls(document)


def _schema_problem(validator: Validator, arguments: Mapping[str, Any]) -> str | None:
    """The first violation of the schema by `arguments`, in words (None: fine, or unjudgeable)."""
    from jsonschema import exceptions

    try:
        error = exceptions.best_match(validator.iter_errors(dict(arguments)))
    except Exception:  # e.g. a reference the client will not fetch: the server decides
        return None
    if error is None:
        return None
    where = ".".join(str(part) for part in error.absolute_path)
    subject = f"the argument {where}" if where else "the arguments"
    value = _json(error.instance)
    bound = error.validator_value
    words = {
        "type": f"must be {_article(_type_of(error.schema))}, not {value}",
        "maximum": f"must be at most {_number(bound)}, not {value}",
        "minimum": f"must be at least {_number(bound)}, not {value}",
        "exclusiveMaximum": f"must be less than {_number(bound)}, not {value}",
        "exclusiveMinimum": f"must be more than {_number(bound)}, not {value}",
    }
    detail = words.get(str(error.validator), f"is not accepted: {error.message}")
    return clean_line(f"{subject} {detail}")


def _article(kind: str) -> str:
    return f"an {kind}" if kind[:1] in "aeiou" else f"a {kind}"
