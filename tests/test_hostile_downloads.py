"""Hostile downloads (issue 17 item 3): what a URL serves is checked before it is an image on disk.

`fetch_file` against `tests/hostile.py`'s loopback server (an HTML page with 200, a JPEG named
.png, a 10 GB Content-Length, an endless body, 1 byte a second, a file:// URL), then `batcher
collect` end to end: a refusal is that task's error in results.csv (exit 1, not 75 "still
generating"), the results ledger keeps it `generated` for a later run, and server text in a log
line cannot forge another.
"""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path

import pytest

from batcher.emulator.config import GenerationConfig
from batcher.emulator.runner import running_emulator
from batcher.results.download import (
    NOT_AN_IMAGE,
    TOO_LARGE,
    URL_REFUSED,
    DownloadFailed,
    DownloadPolicy,
    DownloadRefused,
    download_session,
    fetch_file,
)
from tests.helpers import (
    collect_from,
    emulator_settings,
    read_ledger,
    run_cli,
    submitted_mps,
    write_manifest,
)
from tests.hostile import PNG, Hostile, hostile_server

POLICY = DownloadPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02)


async def fetch(server: Hostile, name: str, tmp_path: Path, *, url: str | None = None,
                announced: str = "png", expected_size: int = 0,
                policy: DownloadPolicy = POLICY) -> Path:
    target = tmp_path / "0001-a-cat-01234567.png"
    async with download_session(policy) as session:
        await asyncio.wait_for(fetch_file(
            session, url or server.file_url(name), target, expected_size=expected_size,
            policy=policy, out_dir=tmp_path, announced=announced), 60)
    return target


def nothing_on_disk(tmp_path: Path) -> bool:
    return not list(tmp_path.iterdir())


async def test_a_real_png_is_saved(tmp_path):
    async with hostile_server() as server:
        target = await fetch(server, "image.png", tmp_path, expected_size=len(PNG))
    assert target.read_bytes() == PNG


@pytest.mark.parametrize("name, announced, says", [
    ("page.png", "png", "not an image"),
    ("photo.png", "png", "a jpeg image, announced as png"),
    ("page.png", "", "not an image"),
])
async def test_a_body_that_is_not_an_image_of_the_announced_type_is_refused(
        tmp_path, name, announced, says):
    async with hostile_server() as server:
        with pytest.raises(DownloadRefused) as refused:
            await fetch(server, name, tmp_path, announced=announced)
    assert refused.value.code == NOT_AN_IMAGE and says in str(refused.value)
    assert server.gets == [name], "refused at once, not retried"
    assert nothing_on_disk(tmp_path), "no .png and no .part left"


async def test_a_jpeg_announced_as_jpg_is_accepted(tmp_path):
    async with hostile_server() as server:
        target = await fetch(server, "photo.png", tmp_path, announced="jpg")
    assert target.read_bytes().startswith(b"\xff\xd8\xff")


async def test_a_10_gb_content_length_is_refused_before_reading_the_body(tmp_path):
    async with hostile_server() as server:
        with pytest.raises(DownloadRefused) as refused:
            await fetch(server, "huge-length.png", tmp_path)
        await asyncio.sleep(0.2)
    assert refused.value.code == TOO_LARGE and "10000000000" in str(refused.value)
    assert nothing_on_disk(tmp_path)
    assert server.streamed and server.streamed[0] < 64 << 20


async def test_a_body_past_max_image_bytes_is_cut_off_and_its_part_removed(tmp_path):
    policy = DownloadPolicy(max_attempts=2, max_bytes=1 << 20)
    async with hostile_server() as server:
        with pytest.raises(DownloadRefused) as refused:
            await fetch(server, "endless.png", tmp_path, policy=policy)
        await asyncio.sleep(0.2)
    assert refused.value.code == TOO_LARGE
    assert nothing_on_disk(tmp_path)
    assert server.streamed[0] < 64 << 20, "the reader left; the server stopped sending"


async def test_an_api_size_over_the_cap_is_refused_without_a_request(tmp_path):
    policy = DownloadPolicy(max_bytes=1000)
    async with hostile_server() as server:
        with pytest.raises(DownloadRefused) as refused:
            await fetch(server, "image.png", tmp_path, expected_size=4096, policy=policy)
    assert refused.value.code == TOO_LARGE and server.gets == []


async def test_a_size_other_than_the_api_s_is_not_kept(tmp_path):
    async with hostile_server() as server:
        with pytest.raises(DownloadFailed):
            await fetch(server, "image.png", tmp_path, expected_size=len(PNG) + 1)
    assert nothing_on_disk(tmp_path)


async def test_a_one_byte_a_second_body_gets_one_time_bound_for_all_its_attempts(tmp_path):
    policy = DownloadPolicy(max_attempts=5, base_delay=0.01, timeout=1.5)
    async with hostile_server() as server:
        with pytest.raises(DownloadFailed) as failed:
            await fetch(server, "slow.png", tmp_path, policy=policy)
    assert "Timeout" in str(failed.value)
    assert server.gets == ["slow.png"], "the file's time was spent: not four more attempts"
    assert nothing_on_disk(tmp_path)


async def test_a_body_that_stops_arriving_hits_the_idle_timeout(tmp_path):
    policy = DownloadPolicy(max_attempts=1, idle_timeout=0.5)
    async with hostile_server() as server:
        with pytest.raises(DownloadFailed) as failed:
            await fetch(server, "slow.png", tmp_path, policy=policy)
    assert "Timeout" in str(failed.value)
    assert nothing_on_disk(tmp_path)


@pytest.mark.parametrize("url", [
    "file:///etc/passwd", "ftp://127.0.0.1/a.png", "http://images.example.com/a.png",
    "https:///a.png", "http://[::1/a.png", "javascript:alert(1)",
])
async def test_urls_that_are_not_https_or_loopback_http_are_refused_unfetched(tmp_path, url):
    async with hostile_server() as server:
        with pytest.raises(DownloadRefused) as refused:
            await fetch(server, "", tmp_path, url=url)
    assert refused.value.code == URL_REFUSED and "must be https" in str(refused.value)
    assert server.gets == [] and nothing_on_disk(tmp_path)


# --- End to end: `batcher collect` -----------------------------------------------------------

FAST = GenerationConfig(seconds=0.0, jitter=0.0, image_bytes=4096)


def csv_row(manifest: Path) -> dict[str, str]:
    path = manifest.with_name(f"{manifest.stem}.results") / "results.csv"
    with open(path, newline="", encoding="utf-8") as stream:
        [row] = list(csv.DictReader(stream))
    return row


def last_result_event(manifest: Path) -> str:
    return read_ledger(manifest.with_name(f"{manifest.stem}.results.jsonl"))[-1]["event"]


@pytest.mark.parametrize("url_of, code", [
    (lambda server: "file:///etc/passwd", URL_REFUSED),
    (lambda server: server.file_url("page.png"), NOT_AN_IMAGE),
], ids=["file-url", "html-page"])
async def test_collect_makes_a_refused_download_that_task_s_error_not_still_generating(
        tmp_path, url_of, code):
    manifest = await submitted_mps(tmp_path, 1)
    async with hostile_server() as server:
        server.poll_answers["DescribeAigcImageTask"] = {
            "Status": "DONE", "ImageUrls": [url_of(server)], "RequestId": "r"}
        exit_code, stdout, stderr = await collect_from(manifest, server.url)
    assert exit_code == 1, stderr
    row = csv_row(manifest)
    assert row["state"] == "generation_failed" and row["error_code"] == code, row
    assert row["files"] == "" and "still generating" not in stderr + stdout
    out = manifest.with_name(f"{manifest.stem}.results")
    assert not list(out.glob("*.png")) and not list(out.glob("*.part"))
    assert server.gets.count("page.png") <= 1, "refused once, not retried five times"
    assert last_result_event(manifest) == "generated", "a later run may try again"


async def test_an_html_page_an_older_run_saved_as_png_is_fetched_again(tmp_path):
    manifest = write_manifest(tmp_path, vod=0, mps=1)
    async with running_emulator(emulator_settings(generation=FAST)) as emulator:
        sent = await run_cli("submit", str(manifest), "--endpoint", emulator.url, "--quiet")
        assert sent[0] == 0, sent
        assert (await collect_from(manifest, emulator.url, "--wait"))[0] == 0
        [saved] = manifest.with_name(f"{manifest.stem}.results").glob("*.png")
        saved.write_bytes(b"<html>502</html>")
        # The results ledger says generated again, as a crash before its downloaded line would.
        ledger = manifest.with_name(f"{manifest.stem}.results.jsonl")
        lines = ledger.read_text().splitlines(keepends=True)
        ledger.write_text("".join(lines[:-1]))
        code, _, stderr = await collect_from(manifest, emulator.url)
    assert code == 0, stderr
    assert saved.read_bytes().startswith(b"\x89PNG"), "the page was replaced by the image"


async def test_max_image_bytes_refuses_then_a_run_without_it_downloads(tmp_path):
    manifest = write_manifest(tmp_path, vod=0, mps=1)
    async with running_emulator(emulator_settings(generation=FAST)) as emulator:
        sent = await run_cli("submit", str(manifest), "--endpoint", emulator.url, "--quiet")
        assert sent[0] == 0, sent
        first = await collect_from(manifest, emulator.url, "--max-image-bytes", "1000")
        refused = csv_row(manifest)
        second = await collect_from(manifest, emulator.url)
    assert first[0] == 1 and refused["error_code"] == TOO_LARGE, first
    assert "1000" in refused["error_message"]
    assert second[0] == 0 and csv_row(manifest)["state"] == "downloaded", second


async def test_a_bad_max_image_bytes_is_a_usage_error(tmp_path):
    manifest = write_manifest(tmp_path, vod=0, mps=1)
    code, _, stderr = await run_cli("collect", str(manifest), "--max-image-bytes", "lots")
    assert code == 2 and "is not a size" in stderr and "Traceback" not in stderr


async def test_a_newline_in_a_server_error_code_cannot_forge_a_log_line(tmp_path):
    manifest = await submitted_mps(tmp_path, 1)
    forged = "ResourceNotFound.TaskNotFound\n2026-12-02 12:00:00 INFO FORGED: all downloaded"
    async with hostile_server() as server:
        server.answer = json.dumps({"Response": {
            "Error": {"Code": forged, "Message": "gone\r\nFORGED too"},
            "RequestId": "r"}}).encode()
        exit_code, stdout, stderr = await collect_from(manifest, server.url)
    assert exit_code == 1, stderr
    lines = (stdout + stderr).splitlines()
    assert not [line for line in lines if line.startswith(("2026-12-02 12:00:00", "FORGED"))], \
        lines
    assert any("TaskNotFound\\n2026" in line for line in lines), lines
