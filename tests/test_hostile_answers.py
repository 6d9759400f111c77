"""Hostile API answers (issue 17 item 3): the client reads a bounded amount, never raises, and a
body that is not the API's is a `MalformedAnswer` (ambiguous: the request reached the server).

The real client against `tests/hostile.py`'s loopback server; the fuzz test feeds mutated copies
of the emulator's own poll answers through the client and `read_generation`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batcher.api.services import MPS, VOD
from batcher.emulator.config import EmulatorConfig, GenerationConfig
from batcher.emulator.runner import running_emulator
from batcher.results.outcomes import Generation, read_generation
from batcher.wire.client import MAX_ANSWER_BYTES, AigcClient, Answer, ClientSettings
from batcher.wire.credentials import Credentials
from batcher.wire.errors import MALFORMED_ANSWER, ApiError, TransportError, printable
from tests.hostile import hostile_server

CREDENTIALS = Credentials("AKIDhostileTest00000000000000000", "hostile-test-secret-key")
VOD_PARAMS = {"SubAppId": 251007502, "ModelName": "GEM", "ModelVersion": "2.5", "Prompt": "a cat"}
MPS_PARAMS = {"ModelName": "Hunyuan", "Prompt": "a dog"}


def client_for(url: str) -> AigcClient:
    return AigcClient(CREDENTIALS, ClientSettings(endpoint=url, request_timeout=20))


def assert_malformed(outcome: object) -> None:
    assert isinstance(outcome, TransportError), outcome
    assert outcome.code == MALFORMED_ANSWER and outcome.may_have_reached_server


async def test_an_answer_nested_200000_deep_is_a_malformed_answer_not_a_recursion_error():
    async with hostile_server() as server, client_for(server.url) as client:
        server.answer = b'{"Response": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
        create = await client.create_task(MPS, MPS_PARAMS)
        poll = await client.call(VOD, "DescribeTaskDetail", {"TaskId": "t", "SubAppId": 1})
    assert_malformed(create)
    assert_malformed(poll)


async def test_a_30_mb_answer_is_not_read_past_the_bound():
    async with hostile_server() as server, client_for(server.url) as client:
        server.answer_stream = 30 << 20
        outcome = await client.create_task(VOD, VOD_PARAMS)
        await asyncio.sleep(0.2)  # the server notices the reader left
    assert_malformed(outcome)
    assert str(MAX_ANSWER_BYTES) in outcome.message
    [sent] = server.streamed
    assert sent < 30 << 20, "the client stopped reading; the server could not send it all"


@pytest.mark.parametrize("body", [
    b"[]", b"null", b'"Response"', b'{"Response": []}', b'{"Response": {"Error": "boom"}}',
    b'{"Response": {"Error": {"Code": 5, "Message": "x"}}}',
    b'{"Response": {"Error": {"Code": ["InternalError"], "Message": "x"}}}',
    b'{"Response": {"Error": {"Code": "InternalError", "Message": {"a": 1}}}}',
    b'{"Response": {"TaskId": "t-1", "RequestId": {"nested": true}}}',
    b'{"Response": {"TaskId": 12}}', b"\xff\xfe not utf-8", b'{"Response": {"TaskId": "t"',
], ids=lambda body: body[:40].decode("latin-1"))
async def test_answers_of_the_wrong_shape_are_malformed_on_create(body):
    async with hostile_server() as server, client_for(server.url) as client:
        server.answer = body
        outcome = await client.create_task(MPS, MPS_PARAMS)
    assert_malformed(outcome)


async def test_server_text_with_newlines_and_escapes_comes_back_as_one_safe_line():
    forged = "InternalError\n2026-12-02 12:00:00 INFO collect: every task downloaded\x1b[2K"
    async with hostile_server() as server, client_for(server.url) as client:
        server.answer = json.dumps({"Response": {
            "Error": {"Code": forged, "Message": "line one\r\nline two\u2028three"},
            "RequestId": "r"}}).encode()
        outcome = await client.create_task(MPS, MPS_PARAMS)
    assert isinstance(outcome, ApiError)
    for text in (outcome.code, outcome.message):
        assert text.isprintable(), text
    assert outcome.code.startswith("InternalError\\n2026") and "\\x1b" in outcome.code
    assert outcome.message == "line one\\r\\nline two\\u2028three"


def test_printable_keeps_letters_and_bounds_the_length():
    assert printable("水彩画の猫 ok") == "水彩画の猫 ok"
    assert printable("\u202egnp.exe") == "\\u202egnp.exe"
    assert len(printable("x" * 10_000)) < 600


# --- Fuzz: mutated poll answers of the emulator's own shapes ---------------------------------

FAST = GenerationConfig(seconds=0.0, jitter=0.0)


async def _emulator_answers() -> dict[str, dict[str, Any]]:
    """A finished vod `DescribeTaskDetail` and mps `DescribeAigcImageTask` answer, as the
    emulator gives them."""
    config = EmulatorConfig(secret_id=CREDENTIALS.secret_id, secret_key=CREDENTIALS.secret_key,
                            generation=FAST)
    async with running_emulator(config) as emulator, AigcClient(
            CREDENTIALS, ClientSettings(endpoint=emulator.url)) as client:
        vod = await client.create_task(VOD, VOD_PARAMS)
        mps = await client.create_task(MPS, MPS_PARAMS)
        await asyncio.sleep(0.1)
        vod_poll = {"TaskId": getattr(vod, "task_id", ""), "SubAppId": 251007502}
        answers = {
            "vod": await client.call(VOD, VOD.poll_action, vod_poll),
            "mps": await client.call(MPS, MPS.poll_action, {"TaskId": getattr(mps, "task_id", "")}),
        }
    assert all(isinstance(answer, Answer) for answer in answers.values()), answers
    return {name: answer.response for name, answer in answers.items()  # type: ignore[union-attr]
            if isinstance(answer, Answer)}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replace(value[path[0]], path[1:], new)
    return copy


@st.composite
def mutated_body(draw: st.DrawFn, answers: dict[str, dict[str, Any]]) -> tuple[str, bytes]:
    service = draw(st.sampled_from(sorted(answers)))
    document: Any = {"Response": answers[service]}
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(document)))
        document = _replace(document, path, draw(JSON))
    body = json.dumps(document).encode()
    if draw(st.booleans()):  # byte-level damage too: cut it, or splice bytes in
        cut = draw(st.integers(0, len(body)))
        body = body[:cut] + draw(st.binary(max_size=8)) + body[cut:][: draw(st.integers(0, 40))]
    return service, body


def test_mutated_poll_answers_are_an_outcome_never_an_exception():
    # Bounded: 150 examples over one loopback connection take a few seconds.
    answers = asyncio.run(_emulator_answers())
    loop = asyncio.new_event_loop()
    stack = contextlib.AsyncExitStack()
    server = loop.run_until_complete(stack.enter_async_context(hostile_server()))
    client = loop.run_until_complete(stack.enter_async_context(client_for(server.url)))

    async def read(service: str, body: bytes) -> object:
        server.answer = body
        spec = VOD if service == "vod" else MPS
        outcome = await client.call(spec, spec.poll_action, {"TaskId": "t"})
        return read_generation(service, outcome.response) if isinstance(outcome, Answer) \
            else outcome

    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(mutated_body(answers))
    def check(case: tuple[str, bytes]) -> None:
        service, body = case
        result = loop.run_until_complete(asyncio.wait_for(read(service, body), 10))
        assert isinstance(result, Generation | ApiError | TransportError), result
        if isinstance(result, Generation) and result.error is not None:
            assert result.error.code.isprintable() and result.error.message.isprintable()
        if isinstance(result, ApiError):
            assert result.code.isprintable() and result.message.isprintable()

    try:
        check()
    finally:
        loop.run_until_complete(stack.aclose())
        loop.close()
