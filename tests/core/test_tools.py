"""Local tools: schemas, argument checks, errors that never break a session."""

from __future__ import annotations

import datetime as dt

import pytest

from swaramd.core.tools import ToolError, ToolRegistry, get_time_tool, set_volume_tool


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
