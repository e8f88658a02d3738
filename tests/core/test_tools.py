"""Local tools: schemas, argument checks, errors that never break a session."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from swaramd.core.tools import (
    MAX_ARGUMENTS_CHARS,
    Tool,
    ToolError,
    ToolRegistry,
    get_time_tool,
    preview,
    set_volume_tool,
)


@pytest.fixture
def registry():
    levels: list[int] = []
    fixed = dt.datetime(2026, 11, 21, 9, 5, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30),
                                                               "IST"))
    reg = ToolRegistry([get_time_tool(lambda: fixed), set_volume_tool(levels.append)])
    reg.levels = levels  # type: ignore[attr-defined]
    return reg


def test_schemas_offered(registry):
    names = [s["name"] for s in registry.schemas()]
    assert names == ["get_time", "set_volume"]
    assert all(s["type"] == "function" and s["parameters"]["type"] == "object"
               for s in registry.schemas())


def test_get_time_gives_local_date_time_and_zone(registry):
    assert registry.call("get_time", {}) == {
        "date": "2026-11-21", "time": "09:05", "weekday": "Saturday", "time_zone": "IST",
        "utc_offset": "+0530"}


def test_set_volume(registry):
    assert registry.call("set_volume", {"level": 40}) == {"ok": True, "level": 40}
    assert registry.levels == [40]


@pytest.mark.parametrize(("name", "args", "message"), [
    ("get_weather", {}, "unknown tool"),
    ("set_volume", {}, "missing argument 'level'"),
    ("set_volume", {"level": 101}, "at most 100"),
    ("set_volume", {"level": -1}, "at least 0"),
    ("set_volume", {"level": "loud"}, "must be of type integer"),
    ("set_volume", {"level": True}, "must be of type integer"),
    ("set_volume", {"level": 5, "x": 1}, "unexpected argument 'x'"),
    ("get_time", None, "not a JSON object"),
])
def test_bad_calls_raise_tool_errors(registry, name, args, message):
    with pytest.raises(ToolError, match=message):
        registry.call(name, args)


def test_a_crashing_tool_is_a_tool_error():
    def boom(level: int) -> None:
        raise RuntimeError("hardware")
    with pytest.raises(ToolError, match="set_volume failed: RuntimeError"):
        ToolRegistry([set_volume_tool(boom)]).call("set_volume", {"level": 3})


def _raises(_args):
    raise KeyError("a bug")


HOSTILE = {
    "deep": ("set_volume", "[" * 1000 + "]" * 1000, "not a JSON object"),
    "deeper than orjson goes": ("set_volume", '{"a":' * 5000 + "1" + "}" * 5000,
                                "not a JSON object"),
    "huge": ("set_volume", '{"level": 5, "x": "' + "y" * 3_000_000 + '"}', "longer than"),
    "not an object": ("set_volume", "[1]", "not a JSON object"),
    "not JSON": ("set_volume", "{level: 5", "not a JSON object"),
    "lone surrogate": ("set_volume", '{"level": "\\ud800"}', "not a JSON object"),
    "lone surrogate text": ("set_volume", '{"level": "\ud800"}', "not a JSON object"),
    "NaN": ("set_volume", '{"level": NaN}', "not a JSON object"),
    "unknown tool": ("get_weather", "{}", "unknown tool 'get_weather'"),
    "huge unknown name": ("x" * 100_000, "{}", "unknown tool"),
    "a tool's bug": ("boom", "{}", "boom failed: KeyError"),
    "a result JSON cannot hold": ("odd", "{}", "odd failed: TypeError"),
}


@pytest.mark.parametrize(("name", "arguments", "message"), HOSTILE.values(), ids=HOSTILE)
def test_any_call_gets_an_output_and_never_raises(registry, name, arguments, message):
    open_schema = {"type": "object", "properties": {}}
    reg = ToolRegistry([*registry._tools.values(), Tool("boom", "", open_schema, _raises),
                        Tool("odd", "", open_schema, lambda _a: {1j})])
    output, ok = reg.answer(name, arguments)
    assert not ok and message in json.loads(output)["error"]
    assert len(output) < 300 and registry.levels == []


def test_answer_runs_a_good_call(registry):
    assert registry.answer("set_volume", '{"level": 7}') == ('{"ok": true, "level": 7}', True)
    assert registry.answer("get_time", "")[1]


def test_a_preview_is_short_and_says_how_long_the_text_was():
    assert preview("short") == "short"
    text = preview("a" * MAX_ARGUMENTS_CHARS)
    assert len(text) < 250 and text.endswith(f"... ({MAX_ARGUMENTS_CHARS} characters)")
