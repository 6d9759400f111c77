"""docs/python-api.md: `batcher.plan`, `submit`, `collect` and their async twins, end to end.

The real calls against a real emulator on loopback (`batcher.testing.Emulator`): the same ledgers
and files as the CLI, nothing printed unless asked, errors from one tree with the CLI's exit
codes, and the plain calls usable inside a running event loop (a notebook cell).
"""

from __future__ import annotations

import asyncio
import json
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

import batcher
from batcher.testing import Emulator
from tests.helpers import write_manifest


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(generation_seconds=0.2) as running:
        yield running


def _keys(emulator: Emulator) -> dict[str, object]:
    return {"endpoint": emulator.url, "secret_id": emulator.secret_id,
            "secret_key": emulator.secret_key, "rate_store": "memory"}


def test_the_public_surface_is_what_all_names_and_every_name_resolves() -> None:
    import batcher.exceptions
    import batcher.library.collect
    import batcher.library.plan
    import batcher.library.results
    import batcher.library.submit

    homes: list[types.ModuleType] = [batcher.exceptions, batcher.library.collect,
                                     batcher.library.plan, batcher.library.results,
                                     batcher.library.submit]
    exported = {name for home in homes for name in home.__all__}
    assert exported <= set(batcher.__all__)
    assert sorted(batcher.__all__) == [name for name in dir(batcher)]
    for name in batcher.__all__:
        member = getattr(batcher, name)
        assert name == "__version__" or member.__doc__, f"batcher.{name} has no docstring"


def test_plan_counts_tasks_per_service_and_sends_nothing(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, vod=3, mps=2)
    plan = batcher.plan(manifest)
    assert (plan.tasks, plan.to_send) == (5, 5)
    assert {name: item.tasks for name, item in plan.services.items()} == {"vod": 3, "mps": 2}
    assert not (tmp_path / "job.ledger.jsonl").exists()


def test_a_broken_manifest_raises_manifest_error_before_anything_is_sent(
        tmp_path: Path, emulator: Emulator) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("service: vod\ntasks:\n  - {Prompt: a cat, Colour: red}\n")
    with pytest.raises(batcher.ManifestError) as raised:
        batcher.submit(broken, **_keys(emulator))
    assert raised.value.exit_code == 2
    assert "broken.yaml" in str(raised.value)
    assert emulator.stats()["services"]["vod"]["requests"] == 0


def test_submit_creates_every_task_once_and_a_rerun_sends_nothing(
        tmp_path: Path, emulator: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, vod=4, mps=3)
    first = batcher.submit(manifest, **_keys(emulator))
    assert first.exit_code == batcher.ExitCode.OK
    assert first.counts()["vod"]["submitted"] == 4
    assert first.counts()["mps"]["submitted"] == 3
    again = batcher.submit(manifest, **_keys(emulator))
    assert again.exit_code == 0
    assert (emulator.created("vod"), emulator.created("mps")) == (4, 3)
    ledger = [json.loads(line) for line in (tmp_path / "job.ledger.jsonl").read_text().splitlines()]
    assert sum(line["event"] == "submitted" for line in ledger) == 7
    assert capsys.readouterr() == ("", "")


def test_a_held_ledger_raises_ledger_locked_with_exit_code_3(
        tmp_path: Path, emulator: Emulator) -> None:
    from batcher.state.ledger import open_ledger

    manifest = write_manifest(tmp_path, vod=1, mps=0)
    holder = open_ledger(tmp_path / "job.ledger.jsonl")
    try:
        with pytest.raises(batcher.LedgerLocked) as raised:
            batcher.submit(manifest, **_keys(emulator))
        assert raised.value.exit_code == 3
    finally:
        asyncio.run(holder.close())
    assert emulator.created("vod") == 0


def test_the_plain_calls_work_inside_a_running_event_loop(
        tmp_path: Path, emulator: Emulator) -> None:
    manifest = write_manifest(tmp_path, vod=2, mps=1)

    async def notebook_cell() -> int:
        return int(batcher.submit(manifest, **_keys(emulator)).exit_code)

    assert asyncio.run(notebook_cell()) == 0
    assert emulator.created("vod") + emulator.created("mps") == 3


def test_submit_then_collect_async_brings_every_image_home(
        tmp_path: Path, emulator: Emulator) -> None:
    manifest = write_manifest(tmp_path, vod=3, mps=2)

    async def flow() -> batcher.CollectResult:
        submitted = await batcher.submit_async(manifest, **_keys(emulator))
        assert submitted.exit_code == 0
        return await batcher.collect_async(manifest, wait=True, timeout=60, expected_generation=1.0,
                                             **_keys(emulator))

    collected = asyncio.run(flow())
    assert collected.exit_code == 0
    assert collected.counts == {"downloaded": 5}
    rows = list(collected.rows)
    assert len(rows) == len(collected.rows) == 5
    assert {row.service for row in rows} == {"vod", "mps"}
    for row in rows:
        assert row.state == "downloaded" and row.task_id and row.error is None
        assert row.files and all(path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
                                 for path in row.files)
    assert collected.gallery == tmp_path / "job.results" / "index.html"
    assert collected.gallery.is_file()


def test_collect_before_anything_finished_says_still_generating(
        tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, vod=2, mps=0)
    with Emulator(generation_seconds=30) as slow:
        assert batcher.submit(manifest, **_keys(slow)).exit_code == 0
        collected = batcher.collect(manifest, **_keys(slow))
    assert collected.exit_code == batcher.ExitCode.TIME_LIMIT
    assert collected.counts == {"pending": 2}
    assert [row.state for row in collected.rows] == ["pending", "pending"]


def test_missing_credentials_raise_credentials_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(batcher.CredentialsError, match="secret_key"):
        batcher.submit(write_manifest(tmp_path, vod=1, mps=0), secret_id="AKIDonly")
