"""Local tools the service may call: schemas offered in `session.update`,
argument checking, and the built-ins `get_time` and `set_volume`.

A tool is a name, a description, a JSON schema for its arguments and a
function of those arguments returning a JSON-serialisable result. Running
them (off the event loop, with a timeout) is the daemon's job; an unknown
tool, bad arguments or a failure all answer an error output, never break the
session.

`arguments` come from the peer and may be anything: huge, nested a thousand
deep, not JSON, not an object, full of lone surrogates. `ToolRegistry.answer`
turns any of them into an output text (an error when it must) and never
raises; the arguments it parses are bounded (`MAX_ARGUMENTS_CHARS`), and
what a log line or an error shows of a peer's text is shortened (`preview`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

ToolFunc = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True, slots=True)
class Tool:
    """One local function the service can call."""

    name: str
    description: str
    parameters: dict[str, Any]
    run: ToolFunc = field(compare=False)

    def schema(self) -> dict[str, Any]:
        """The function-tool entry for `session.update`."""
        return {"type": "function", "name": self.name, "description": self.description,
                "parameters": self.parameters}


class ToolError(Exception):
    """A tool's arguments are wrong or it failed; the message goes back to the service."""


MAX_ARGUMENTS_CHARS = 64 * 1024   # our tools take a few small fields; more is refused unread
PREVIEW_CHARS = 200               # what a log line or an error shows of the peer's text


def preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    """`text` shortened for a log line or an error message, with its full length when cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def parse_arguments(arguments: str) -> dict[str, Any]:
    """A tool call's `arguments` JSON text as an object; raises ToolError when it is not one.

    orjson parses without recursion (it refuses nesting past 1024) and refuses lone
    surrogates; the size is checked first, so a hostile call costs little.
    """
    if len(arguments) > MAX_ARGUMENTS_CHARS:
        raise ToolError(f"arguments are longer than {MAX_ARGUMENTS_CHARS} characters")
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except (ValueError, RecursionError, TypeError):   # JSONDecodeError is a ValueError
        raise ToolError("arguments are not a JSON object") from None
    if not isinstance(value, dict):
        raise ToolError("arguments are not a JSON object")
    return value


_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,), "number": (int, float), "string": (str,), "boolean": (bool,),
    "object": (dict,), "array": (list,),
}


def check_arguments(schema: Mapping[str, Any], args: Mapping[str, Any]) -> None:
    """Validate `args` against the small JSON-schema subset our tools use; raises ToolError."""
    props: Mapping[str, Any] = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in args:
            raise ToolError(f"missing argument {name!r}")
    if schema.get("additionalProperties") is False:
        extra = sorted(set(args) - set(props))
        if extra:
            raise ToolError(f"unexpected argument {extra[0]!r}")
    for name, value in args.items():
        spec = props.get(name)
        if spec is None:
            continue
        kinds = _TYPES.get(spec.get("type", ""), (object,))
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            raise ToolError(f"argument {name!r} must be of type {spec.get('type')}")
        if "minimum" in spec and value < spec["minimum"]:
            raise ToolError(f"argument {name!r} must be at least {spec['minimum']}")
        if "maximum" in spec and value > spec["maximum"]:
            raise ToolError(f"argument {name!r} must be at most {spec['maximum']}")
        if "enum" in spec and value not in spec["enum"]:
            raise ToolError(f"argument {name!r} must be one of {spec['enum']}")


def get_time_tool(now: Callable[[], dt.datetime] = lambda: dt.datetime.now().astimezone()) -> Tool:
    """The device's local date, time and time zone, which the service cannot know."""
    def run(_args: dict[str, Any]) -> dict[str, Any]:
        t = now()
        return {"date": t.date().isoformat(), "time": t.strftime("%H:%M"),
                "weekday": t.strftime("%A"), "time_zone": t.tzname() or "local",
                "utc_offset": t.strftime("%z")}
    return Tool("get_time", "The device's current local date, time, weekday and time zone.",
                {"type": "object", "properties": {}, "additionalProperties": False}, run)


def set_volume_tool(apply: Callable[[int], None]) -> Tool:
    """Set the speaker level 0-100 (persisted by the audio engine)."""
    def run(args: dict[str, Any]) -> dict[str, Any]:
        level = int(args["level"])
        apply(level)
        return {"ok": True, "level": level}
    return Tool("set_volume", "Set the speaker volume, from 0 (silent) to 100 (loudest).",
                {"type": "object",
                 "properties": {"level": {"type": "integer", "minimum": 0, "maximum": 100,
                                          "description": "the new volume, 0 to 100"}},
                 "required": ["level"], "additionalProperties": False}, run)


def builtin_tools(set_volume: Callable[[int], None]) -> list[Tool]:
    """Every tool swaramd has, in the order `session.update` offers them; the one list that
    both the config's `session.tools` check and the daemon's registry use. To add a tool,
    write its `Tool` above and add it here."""
    return [get_time_tool(), set_volume_tool(set_volume)]


BUILTIN_TOOLS: tuple[str, ...] = tuple(t.name for t in builtin_tools(lambda _level: None))


class ToolRegistry:
    """The tools offered in `session.update`, by name."""

    def __init__(self, tools: list[Tool]) -> None:
        self._tools = {t.name: t for t in tools}

    @classmethod
    def enabled(cls, names: tuple[str, ...], set_volume: Callable[[int], None]) -> ToolRegistry:
        """The built-in tools that `session.tools` names."""
        return cls([t for t in builtin_tools(set_volume) if t.name in names])

    def schemas(self) -> list[dict[str, Any]]:
        """The `tools` list of `session.update`."""
        return [t.schema() for t in self._tools.values()]

    def answer(self, name: str, arguments: str) -> tuple[str, bool]:
        """Run a call as the service sent it: (its output as JSON text, whether it succeeded).

        Never raises (an Exception, that is): whatever the peer sent or the tool did,
        there is an output to send back. Runs in a worker thread: parsing is bounded
        but not free.
        """
        try:
            tool = self._tool(name)
            result = self.call(tool.name, parse_arguments(arguments))
            return output_text(result), True
        except ToolError as exc:
            return output_text({"error": str(exc)}), False
        except Exception as exc:  # a result JSON cannot hold, or a bug of ours
            return output_text({"error": f"{preview(name, 40)} failed: "
                                         f"{type(exc).__name__}"}), False

    def _tool(self, name: str) -> Tool:
        tool = self._tools.get(name)
        if tool is None:
            raise ToolError(f"unknown tool {preview(name, 40)!r}")
        return tool

    def call(self, name: str, args: dict[str, Any] | None) -> Any:
        """Run a tool synchronously; raises ToolError for anything the caller must report."""
        tool = self._tool(name)
        if args is None:
            raise ToolError("arguments are not a JSON object")
        check_arguments(tool.parameters, args)
        try:
            return tool.run(args)
        except ToolError:
            raise
        except Exception as exc:  # a tool's own bug must not break the session
            raise ToolError(f"{name} failed: {type(exc).__name__}") from exc


def output_text(output: Any) -> str:
    """A tool's output as the JSON text `function_call_output` carries; raises TypeError or
    ValueError for a value JSON cannot hold."""
    return json.dumps(output, ensure_ascii=False, allow_nan=False)
