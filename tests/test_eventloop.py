"""batcher.run.eventloop: uvloop when importable, asyncio's own loop on request; same behaviour."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import os
import signal
from pathlib import Path

import pytest

from batcher.run import eventloop
from batcher.state.ledger import open_ledger, replay

HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None


async def loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


@pytest.mark.skipif(not HAS_UVLOOP, reason="uvloop is not installed")
def test_runs_on_uvloop_when_it_is_installed(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(eventloop.LOOP_ENV, raising=False)
    assert eventloop.run(loop_module()).startswith("uvloop")


def test_asyncio_loop_on_request(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(eventloop.LOOP_ENV, "asyncio")
    assert eventloop.loop_factory() is None
    assert eventloop.run(loop_module()).startswith("asyncio")


@pytest.mark.parametrize("loop", ["default", "asyncio"])
def test_signal_handlers_and_the_ledger_thread_work_on_either_loop(
    loop: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # What a submit relies on: loop.add_signal_handler (SIGINT/SIGTERM in the pipeline) and
    # run_in_executor (the ledger's fdatasync off the loop).
    if loop == "asyncio":
        monkeypatch.setenv(eventloop.LOOP_ENV, "asyncio")
    else:
        monkeypatch.delenv(eventloop.LOOP_ENV, raising=False)
    path = tmp_path / "x.ledger.jsonl"
    key = hashlib.md5(b"1").hexdigest()

    async def main() -> int:
        running = asyncio.get_running_loop()
        got: asyncio.Future[int] = running.create_future()
        running.add_signal_handler(signal.SIGUSR1, got.set_result, signal.SIGUSR1)
        try:
            async with open_ledger(path) as ledger:
                await ledger.sending(key, "vod", 1, "s")
            os.kill(os.getpid(), signal.SIGUSR1)
            return await asyncio.wait_for(got, 10)
        finally:
            running.remove_signal_handler(signal.SIGUSR1)

    assert eventloop.run(main()) == signal.SIGUSR1
    assert len(replay(path)) == 1
