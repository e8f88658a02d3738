"""Logging: journald priorities, and the API key hidden everywhere, library debug included."""

from __future__ import annotations

import asyncio
import io
import logging

import pytest

from swaramd.adapters.link import Link, LinkState
from swaramd.adapters.logs import REDACTED, setup_logging
from swaramd.core import protocol
from swaramd.core.config import SessionConfig
from tests.adapters.test_link import FAST, Recorder
from tests.support.service import FakeService, Peer

KEY = "swaram_live_key_9f8e7d6c5b4a"


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    saved = (root.handlers[:], root.filters[:], root.level)
    yield
    root.handlers[:], root.filters[:] = saved[0], saved[1]
    root.setLevel(saved[2])


def test_journal_priorities(restore_logging):
    out = io.StringIO()
    setup_logging("debug", stream=out, journal=True)
    log = logging.getLogger("swaramd.test")
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e\nsecond line")
    assert out.getvalue().splitlines() == [
        "<7>swaramd.test: d", "<6>swaramd.test: i", "<4>swaramd.test: w",
        "<3>swaramd.test: e", "<3>second line"]


def test_the_key_is_redacted_in_messages_args_and_tracebacks(restore_logging):
    out = io.StringIO()
    setup_logging("debug", secrets=[KEY], stream=out, journal=False)
    log = logging.getLogger("swaramd.test")
    log.info("header Authorization: Bearer %s", KEY)
    try:
        raise RuntimeError(f"bad key {KEY}")
    except RuntimeError:
        log.exception("failed")
    text = out.getvalue()
    assert KEY not in text and text.count(REDACTED) == 2


@pytest.mark.parametrize("key", ["k7short", "abc"])
def test_a_short_key_is_redacted_too(restore_logging, key):
    out = io.StringIO()
    setup_logging("debug", secrets=[key], stream=out, journal=False)
    logging.getLogger("websockets.client").debug("> Authorization: Bearer %s", key)
    logging.getLogger("swaramd.test").info("key file said %r", key)
    text = out.getvalue()
    assert key not in text and text.count(REDACTED) == 2


def test_a_bearer_credential_is_redacted_even_when_not_a_known_secret(restore_logging):
    out = io.StringIO()
    setup_logging("debug", secrets=[KEY], stream=out, journal=False)
    logging.getLogger("websockets.client").debug("> authorization: BEARER other-token-1")
    text = out.getvalue()
    assert "other-token-1" not in text and f"BEARER {REDACTED}" in text


async def test_websockets_debug_output_never_shows_the_key(restore_logging):
    out = io.StringIO()
    setup_logging("debug", secrets=[KEY], stream=out, journal=False)

    async def script(peer: Peer) -> None:
        await peer.setup()
        await peer.close(1000)

    async with FakeService([script], key=KEY) as svc:
        recorder = Recorder()
        link = Link(svc.url, lambda: KEY, lambda: protocol.session_update(SessionConfig(), []),
                    recorder, timings=FAST)
        link.want_connected()
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(link.run())
            await recorder.wait_state(LinkState.BACKOFF)
            task.cancel()
    text = out.getvalue()
    assert "Authorization" in text  # websockets really logged the handshake at debug
    assert KEY not in text
