"""Local tools the service may call (DESIGN §4): schemas offered in `session.update`,
argument checking, and the built-ins `get_time` and `set_volume`.

A tool is a name, a description, a JSON schema for its arguments and a
function of those arguments returning a JSON-serialisable result. Running
them (off the event loop, with a timeout) is the daemon's job; an unknown
tool, bad arguments or a failure all answer an error output, never break the
session.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

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


class ToolRegistry:
    """The tools offered in `session.update`, by name."""

    def __init__(self, tools: list[Tool]) -> None:
        self._tools = {t.name: t for t in tools}

    def schemas(self) -> list[dict[str, Any]]:
        """The `tools` list of `session.update`."""
        return [t.schema() for t in self._tools.values()]

    def call(self, name: str, args: dict[str, Any] | None) -> Any:
        """Run a tool synchronously; raises ToolError for anything the caller must report."""
        tool = self._tools.get(name)
        if tool is None:
            raise ToolError(f"unknown tool {name!r}")
        if args is None:
            raise ToolError("arguments are not a JSON object")
        check_arguments(tool.parameters, args)
        try:
            return tool.run(args)
        except ToolError:
            raise
        except Exception as exc:  # a tool's own bug must not break the session
            raise ToolError(f"{name} failed: {type(exc).__name__}") from exc
