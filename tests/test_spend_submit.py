"""docs/spend.md: what `submit` checks before its first request — the confirmation on a real
pseudo-terminal (asked, refused, --yes, never without a terminal), the vod AIGC quota read and
refusal, and the price table's cost. The real CLI runs against the emulator every time."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from batcher.emulator.config import FaultConfig
from batcher.emulator.runner import running_emulator
from tests.helpers import cli_env, creates, emulator_settings, run_cli, write_manifest

APP = 251007502  # the SubAppId of write_manifest's vod tasks
CTRL_C = "<SIGINT>"


def on_terminal(args: list[str], answer: str | None, timeout: float = 60) -> tuple[int, str]:
    """`batcher ARGS` with a pseudo-terminal as its stdin, stdout and stderr; types `answer`
    when it asks. (exit code, everything it wrote)."""
    master, slave = os.openpty()
    process = subprocess.Popen([sys.executable, "-m", "batcher", *args], stdin=slave,
                               stdout=slave, stderr=slave, env=cli_env(), start_new_session=True)
    os.close(slave)
    output, answered = b"", False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: every end of the terminal closed
                break
            if not chunk:
                break
            output += chunk
            if answer is not None and not answered and b"[y/N]" in output:
                if answer == CTRL_C:
                    process.send_signal(signal.SIGINT)
                else:
                    os.write(master, answer.encode() + b"\n")
                answered = True
        code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    return code, output.decode(errors="replace").replace("\r\n", "\n")


async def submit_on_terminal(tmp_path: Path, answer: str | None, *options: str,
                             **emulator: object) -> tuple[int, str, int]:
    manifest = write_manifest(tmp_path, vod=3, mps=2)
    async with running_emulator(emulator_settings(**emulator)) as running:
        code, output = await asyncio.to_thread(
            on_terminal, ["submit", str(manifest), "--endpoint", running.url, "--rate", "0",
                          "--confirm-above", "4", *options], answer)
        return code, output, creates(running)


async def test_on_a_terminal_no_sends_nothing_and_exits_2(tmp_path):
    code, output, created = await submit_on_terminal(tmp_path, "n")
    assert "Send 5 images? [y/N]" in output and "About to send" in output
    assert "vod GEM 2.5" in output and "mps Hunyuan" in output
    assert "estimated cost" not in output, "no price table, no cost"
    assert code == 2 and created == 0
    assert "not confirmed: nothing was sent" in output and "Traceback" not in output
    assert not (tmp_path / "job.ledger.jsonl").exists(), "a refused run leaves no ledger"


async def test_ctrl_c_at_the_question_sends_nothing_and_exits_130(tmp_path):
    code, output, created = await submit_on_terminal(tmp_path, CTRL_C)
    assert "[y/N]" in output and code == 130 and created == 0
    assert "Traceback" not in output


async def test_on_a_terminal_yes_sends(tmp_path):
    code, output, created = await submit_on_terminal(tmp_path, "y")
    assert "Send 5 images? [y/N]" in output
    assert code == 0 and created == 5


async def test_anything_but_yes_is_no(tmp_path):
    code, _, created = await submit_on_terminal(tmp_path, "sure")
    assert code == 2 and created == 0


async def test_yes_answers_for_it_and_a_small_run_is_not_asked(tmp_path):
    code, output, created = await submit_on_terminal(tmp_path, None, "--yes")
    assert "[y/N]" not in output and code == 0 and created == 5
    more = tmp_path / "more"
    more.mkdir()
    code, output, created = await submit_on_terminal(more, None, "--confirm-above", "5")
    assert "[y/N]" not in output and code == 0 and created == 5


async def test_without_a_terminal_it_never_asks(tmp_path):
    manifest = write_manifest(tmp_path, vod=3, mps=2)
    async with running_emulator(emulator_settings()) as emulator:
        code, _, stderr = await run_cli("submit", str(manifest), "--endpoint", emulator.url,
                                        "--rate", "0", "--confirm-above", "1")
        assert code == 0 and "[y/N]" not in stderr and creates(emulator) == 5


async def test_the_question_shows_the_cost_from_a_price_table(tmp_path):
    prices = tmp_path / "prices.yaml"
    prices.write_text("currency: USD\nvod:\n  GEM 2.5: 0.5\n")
    code, output, created = await submit_on_terminal(tmp_path, "n", "--prices", str(prices))
    assert "estimated cost: 1.5000 USD" in output and "not counted: mps Hunyuan" in output
    assert code == 2 and created == 0


async def test_a_bad_price_table_is_one_line_naming_its_line_and_nothing_is_sent(tmp_path):
    manifest = write_manifest(tmp_path, vod=2, mps=0)
    prices = tmp_path / "prices.yaml"
    prices.write_text("currency: USD\nvod:\n  GEM 2.5: -1\n")
    async with running_emulator(emulator_settings()) as emulator:
        code, stdout, stderr = await run_cli("submit", str(manifest), "--endpoint", emulator.url,
                                             "--prices", str(prices))
        assert len(emulator.records) == 0
    assert code == 2 and stdout == ""
    assert stderr.strip().splitlines() == [
        f"batcher: {prices}:3: a price per image is a number >= 0 (e.g. 0.03), got -1"]
    code, _, stderr = await run_cli("plan", str(manifest), env=cli_env(BATCHER_PRICES=str(prices)))
    assert code == 2 and f"{prices}:3:" in stderr


async def test_plan_shows_the_estimated_cost_only_with_a_price_table(tmp_path):
    manifest = write_manifest(tmp_path, vod=4, mps=2)
    prices = tmp_path / "prices.json"
    prices.write_text('{"currency": "EUR", "vod": {"GEM": 0.25}, "mps": {"Hunyuan 1": 9}}')
    code, stdout, stderr = await run_cli("plan", str(manifest), "--prices", str(prices))
    assert code == 0, stderr
    assert "estimated cost: 1.0000 EUR" in stdout and "not counted: mps Hunyuan" in stdout
    _, stdout, _ = await run_cli("plan", str(manifest))
    assert "cost" not in stdout


# --- the vod quota --------------------------------------------------------------------------


async def test_a_run_needing_more_images_than_the_quota_has_left_is_refused_up_front(tmp_path):
    manifest = write_manifest(tmp_path, vod=5, mps=2)
    async with running_emulator(emulator_settings(aigc_quotas=((APP, 4),))) as emulator:
        code, stdout, stderr = await run_cli("submit", str(manifest), "--endpoint", emulator.url,
                                             "--rate", "0")
        assert creates(emulator) == 0, "nothing sent, mps neither"
    assert code == 2 and stdout == ""
    [line] = [line for line in stderr.splitlines() if line.startswith("batcher: ")]
    assert f"vod application {APP}" in line and "5 image(s)" in line and "4 left" in line
    assert "VOD console" in line and "Traceback" not in stderr


async def test_a_run_the_quota_allows_is_sent_and_what_is_left_is_shown(tmp_path):
    manifest = write_manifest(tmp_path, vod=5, mps=0)
    async with running_emulator(emulator_settings(aigc_quotas=((APP, 8),))) as emulator:
        code, _, stderr = await run_cli("submit", str(manifest), "--endpoint", emulator.url,
                                        "--rate", "0")
        assert code == 0 and creates(emulator) == 5
        assert "8 image(s) left of its AIGC quota" in stderr
        # the next run's 3 new tasks fit exactly; 4 would not
        write_manifest(tmp_path, vod=8, mps=0)
        code, _, stderr = await run_cli("submit", str(manifest), "--endpoint", emulator.url,
                                        "--rate", "0")
        assert code == 0 and creates(emulator) == 8, stderr
        write_manifest(tmp_path, vod=9, mps=0)
        code, _, stderr = await run_cli("submit", str(manifest), "--endpoint", emulator.url,
                                        "--rate", "0")
        assert code == 2 and creates(emulator) == 8 and "0 left" in stderr


async def test_a_refused_quota_read_is_a_warning_and_the_run_goes_on(tmp_path):
    manifest = write_manifest(tmp_path, vod=2, mps=0)
    refused = FaultConfig(fail_codes=(("UnauthorizedOperation", 1.0),))
    async with running_emulator(emulator_settings(faults=refused)) as emulator:
        _, _, stderr = await run_cli("submit", str(manifest), "--endpoint", emulator.url,
                                     "--rate", "0")
        tried = creates(emulator)
    assert "could not read the AIGC quota of vod application" in stderr
    assert "UnauthorizedOperation" in stderr and tried >= 1, "the run went on to send"


async def test_plan_with_credentials_shows_what_the_quota_has_left(tmp_path):
    manifest = write_manifest(tmp_path, vod=5, mps=1)
    async with running_emulator(emulator_settings(aigc_quotas=((APP, 3),))) as emulator:
        code, stdout, stderr = await run_cli("plan", str(manifest), "--endpoint", emulator.url)
        assert creates(emulator) == 0
    assert code == 0, stderr
    assert (f"vod application {APP}: 3 image(s) left of its AIGC quota; this plan sends 5: "
            "submit refuses it") in stdout


async def test_plan_without_credentials_reads_no_quota_and_an_unreachable_one_is_a_warning(
        tmp_path):
    manifest = write_manifest(tmp_path, vod=2, mps=0)
    env = cli_env(HOME=str(tmp_path))
    del env["TENCENTCLOUD_SECRET_ID"], env["TENCENTCLOUD_SECRET_KEY"]
    async with running_emulator(emulator_settings(aigc_quotas=((APP, 3),))) as emulator:
        code, stdout, stderr = await run_cli("plan", str(manifest), "--endpoint", emulator.url,
                                             env=env)
        assert len(emulator.records) == 0, "no credentials: nothing read"
    assert code == 0 and stderr == "" and "quota" not in stdout
    code, stdout, stderr = await run_cli("plan", str(manifest))  # a closed port (cli_env)
    assert code == 0 and "could not read the AIGC quota" in stderr and "quota" not in stdout
