"""Strict validation of client events against the openai SDK's beta realtime types.

Two checks for every event swaramd sends: its type is one of the seven the
service documents, and it validates against
`openai.types.beta.realtime.RealtimeClientEventParam` with `extra="forbid"`
on every TypedDict in it (so an unknown key anywhere is an error).
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Iterator
from functools import cache
from typing import Annotated, Any, Union

import typing_extensions
from openai.types.beta.realtime import RealtimeClientEventParam
from pydantic import ConfigDict, Field, TypeAdapter

DOCUMENTED = frozenset({
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "response.create",
    "response.cancel",
    "conversation.item.create",
})


def _typeddicts(tp: Any, seen: set[int]) -> Iterator[Any]:
    if id(tp) in seen:
        return
    seen.add(id(tp))
    if typing_extensions.is_typeddict(tp):
        yield tp
        for hint in typing_extensions.get_type_hints(tp, include_extras=True).values():
            yield from _typeddicts(hint, seen)
    for arg in typing.get_args(tp):
        yield from _typeddicts(arg, seen)


@cache
def _adapter() -> TypeAdapter[Any]:
    members = typing.get_args(RealtimeClientEventParam)
    for td in _typeddicts(RealtimeClientEventParam, set()):
        td.__pydantic_config__ = ConfigDict(extra="forbid")
    return TypeAdapter(Annotated[Union[members], Field(discriminator="type")])  # noqa: UP007


def _materialise(value: Any) -> Any:
    """Pydantic validates `Iterable[...]` fields lazily: consume them so errors surface."""
    if isinstance(value, dict):
        return {k: _materialise(v) for k, v in value.items()}
    if isinstance(value, str | bytes):
        return value
    if isinstance(value, Iterable):
        return [_materialise(v) for v in value]
    return value


def check_client_event(event: Any) -> None:
    """Raise AssertionError unless `event` is a documented, strictly valid client event."""
    assert isinstance(event, dict), f"client event is not a JSON object: {event!r}"
    assert event.get("type") in DOCUMENTED, f"undocumented client event type {event.get('type')!r}"
    try:
        _materialise(_adapter().validate_python(event))
    except Exception as exc:
        raise AssertionError(f"{event.get('type')} fails strict validation: {exc}") from None
