"""docs/python-api.md, "Testing your own pipeline": `batcher.testing.Emulator` and its fixture.

The emulator a user starts in their tests must answer while their code blocks (a sync call, a
subprocess, a notebook's running loop), count what it created, and free its port afterwards.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from batcher.testing import Emulator
from tests.helpers import write_manifest


def _port_is_free(url: str) -> bool:
    port = int(url.rsplit(":", 1)[1])
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def _submit_process(manifest: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batcher", "submit", str(manifest), "--quiet"],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=False,
    )


def test_a_cli_run_pointed_at_the_emulator_by_its_env_creates_every_task(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, vod=3, mps=2)
    with Emulator() as emulator:
        done = _submit_process(manifest, emulator.env)
        assert done.returncode == 0, done.stderr
        assert (emulator.created("vod"), emulator.created("mps")) == (3, 2)
        url = emulator.url
    assert _port_is_free(url)


def test_the_emulator_answers_while_a_running_event_loop_waits_on_it(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, vod=2, mps=0)

    async def notebook_cell() -> int:
        async with Emulator() as emulator:
            done = await asyncio.to_thread(_submit_process, manifest, emulator.env)
            assert done.returncode == 0, done.stderr
            return emulator.created("vod")

    assert asyncio.run(notebook_cell()) == 2


def test_fault_options_reach_the_emulator(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, vod=0, mps=3)
    with Emulator(fail_codes={"FailedOperation.InvalidUser": 1.0}) as emulator:
        done = _submit_process(manifest, emulator.env)
        assert done.returncode != 0
        assert emulator.created("mps") == 0
        assert set(emulator.stats()["services"]["mps"]["errors"]) == {"FailedOperation.InvalidUser"}


def test_the_url_outside_the_with_block_is_an_error_not_a_dead_address() -> None:
    emulator = Emulator()
    with pytest.raises(RuntimeError, match="not running"):
        _ = emulator.url


PLUGIN_TEST = '''
import os

def test_uses_the_fixture(batcher_emulator):
    assert os.environ["BATCHER_ENDPOINT"] == batcher_emulator.url
    assert os.environ["TENCENTCLOUD_SECRET_ID"] == batcher_emulator.secret_id
    assert batcher_emulator.created("vod") == 0
'''


def test_the_pytest_fixture_is_there_for_any_installed_user(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(PLUGIN_TEST)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
