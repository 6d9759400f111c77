"""Unattended operation (cron): the CLI run as cron runs it — stdin closed, no terminal, a
minimal environment — with time limits, log lines, several manifests and a metrics file."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from batcher.emulator.config import FaultConfig
from batcher.emulator.runner import running_emulator
from batcher.emulator.state import max_in_rolling_second
from batcher.state.writer import open_ledger
from tests.helpers import (
    SECRET_ID,
    SECRET_KEY,
    cli_env,
    emulator_settings,
    event_counts,
    read_ledger,
    run_cli,
    write_manifest,
)

TIMESTAMPED = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z (INFO|WARNING|ERROR) ")


def metrics_of(path):
    samples = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def test_unattended_run_writes_timestamped_plain_log_lines(tmp_path):
    manifest = write_manifest(tmp_path, vod=3, mps=3)
    async with running_emulator(emulator_settings(rate=20, faults=FaultConfig(
            internal_error_rate=0.3, seed=5))) as emulator:
        code, stdout, stderr = await run_cli(
            "submit", str(manifest), "--endpoint", emulator.url, "--progress", "lines")
    assert code == 0, stderr
    assert "\r" not in stderr and "\x1b" not in stderr, "no progress bar or colour codes"
    lines = [line for line in stderr.splitlines() if line]
    assert all(TIMESTAMPED.match(line) for line in lines), lines
    assert "exit code 0" in stdout


async def test_log_format_json_and_log_file(tmp_path):
    # 40 tasks at 20/s cannot all go within 0.01 s under any limiter that keeps the cap, so the
    # run always stops with tasks left: exit 75, never 0.
    manifest = write_manifest(tmp_path, vod=40, mps=0)
    log_file = tmp_path / "logs" / "batcher.log"
    async with running_emulator(emulator_settings(rate=20)) as emulator:
        code, _, stderr = await run_cli(
            "submit", str(manifest), "--endpoint", emulator.url, "--max-runtime", "0.01s",
            "--log-format", "json", "--log-file", str(log_file), "--quiet")
    assert code == 75
    assert stderr == ""
    entries = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert entries and all({"ts", "level", "message"} <= entry.keys() for entry in entries)
    assert entries[-1]["message"].startswith("run ended, exit code 75: ")
    assert "not_sent" in entries[-1]["message"]


async def test_max_runtime_exits_75_and_the_next_run_goes_on(tmp_path):
    manifest = write_manifest(tmp_path, vod=0, mps=40)
    async with running_emulator(emulator_settings(rate=20)) as emulator:
        first, _, _ = await run_cli("submit", str(manifest), "--endpoint", emulator.url,
                                    "--rate", "10", "--max-runtime", "1s", "--quiet")
        second, _, _ = await run_cli("submit", str(manifest), "--endpoint", emulator.url,
                                     "--quiet")
        created = emulator.stats()["services"]["mps"]["created"]
    assert (first, second) == (75, 0)
    assert created == 40


async def test_missing_credentials_in_cron_environment_is_one_line_exit_2(tmp_path):
    manifest = write_manifest(tmp_path, vod=1, mps=0)
    env = cli_env(HOME=str(tmp_path))
    del env["TENCENTCLOUD_SECRET_ID"], env["TENCENTCLOUD_SECRET_KEY"]
    code, stdout, stderr = await run_cli("submit", str(manifest), env=env)
    assert code == 2
    assert len(stderr.strip().splitlines()) == 1 and "TENCENTCLOUD_SECRET_ID" in stderr
    assert "Traceback" not in stderr and stdout == ""
    assert not manifest.with_suffix(".ledger.jsonl").exists()


async def test_directory_of_manifests_each_with_its_own_ledger_sharing_the_rate_cap(tmp_path):
    campaign = tmp_path / "jobs"
    campaign.mkdir()
    write_manifest(campaign, vod=0, mps=25, name="week-1")
    write_manifest(campaign, vod=0, mps=25, name="week-2")
    (campaign / "extra.csv").write_text("service,Prompt,ModelName\nmps,a csv cat,Hunyuan\n")
    async with running_emulator(emulator_settings(rate=20)) as emulator:
        code, stdout, stderr = await run_cli(
            "submit", str(campaign), "--endpoint", emulator.url, "--json")
        times = sorted(r.mono for r in emulator.records if r.service == "mps")
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert [m["manifest"].rsplit("/", 1)[-1] for m in summary["manifests"]] == [
        "week-1.yaml", "week-2.yaml", "extra.csv"]
    assert [m["services"]["mps"]["submitted"] for m in summary["manifests"]] == [25, 25, 1]
    assert len(times) == 51 and max_in_rolling_second(times) <= 20, "one cap for all manifests"
    for name in ("week-1", "week-2"):
        assert event_counts(campaign / f"{name}.ledger.jsonl") == {"submitted": 25}
    # Fair order: the manifests take turns, so the second one starts within the first second.
    week_2_first = read_ledger(campaign / "week-2.ledger.jsonl")[0]["ts"]
    week_1_first = read_ledger(campaign / "week-1.ledger.jsonl")[0]["ts"]
    assert week_2_first[:19] <= _plus_one_second(week_1_first)


def _plus_one_second(ts):
    from datetime import datetime, timedelta

    moment = datetime.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S") + timedelta(seconds=1)
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


async def test_a_csv_included_by_a_yaml_manifest_is_not_submitted_twice(tmp_path):
    campaign = tmp_path / "jobs"
    campaign.mkdir()
    (campaign / "prompts.csv").write_text("Prompt\nfrom the csv\n")
    (campaign / "main.yaml").write_text(
        "service: mps\ndefaults: {mps: {ModelName: Hunyuan}}\ncsv: prompts.csv\n")
    async with running_emulator(emulator_settings(rate=20)) as emulator:
        code, stdout, _ = await run_cli("submit", str(campaign), "--endpoint", emulator.url,
                                        "--json")
        created = emulator.stats()["services"]["mps"]["created"]
    assert code == 0
    assert [m["manifest"].rsplit("/", 1)[-1] for m in json.loads(stdout)["manifests"]] == [
        "main.yaml"]
    assert created == 1


async def test_metrics_file_parses_as_prometheus_text_and_keeps_the_last_success(tmp_path):
    manifest = write_manifest(tmp_path, vod=2, mps=2)
    metrics_file = tmp_path / "textfile" / "batcher.prom"
    async with running_emulator(emulator_settings(rate=20)) as emulator:
        code, _, _ = await run_cli("submit", str(manifest), "--endpoint", emulator.url,
                                   "--quiet", "--metrics-file", str(metrics_file))
    assert code == 0
    first = metrics_of(metrics_file)
    label = str(manifest)
    done_vod = ("batcher_tasks", (("manifest", label), ("service", "vod"), ("state", "done")))
    assert first[done_vod] == 2
    assert first[("batcher_requests_total",
                  (("code", "ok"), ("manifest", label), ("service", "mps")))] == 2
    assert first[("batcher_run_exit_code", (("manifest", label),))] == 0
    success = first[("batcher_last_success_timestamp_seconds", (("manifest", label),))]
    assert success >= first[("batcher_run_start_timestamp_seconds", (("manifest", label),))]

    # A later run that fails keeps the time of the last success, so an alert can fire on it.
    failing = FaultConfig(fail_codes=(("FailedOperation", 1.0),))
    write_manifest(tmp_path, vod=3, mps=2)
    async with running_emulator(emulator_settings(rate=20, faults=failing)) as emulator:
        code, _, _ = await run_cli("submit", str(manifest), "--endpoint", emulator.url,
                                   "--quiet", "--metrics-file", str(metrics_file))
    assert code == 1
    second = metrics_of(metrics_file)
    assert second[("batcher_run_exit_code", (("manifest", label),))] == 1
    assert second[("batcher_last_success_timestamp_seconds", (("manifest", label),))] == success
    assert second[("batcher_requests_total",
                   (("code", "FailedOperation"), ("manifest", label), ("service", "vod")))] == 1
    assert not list(metrics_file.parent.glob(".*.tmp")), "no temporary file left behind"


async def test_the_documented_crontab_line_works_as_written(tmp_path):
    # The exact line from docs/operating.md, with its paths pointed into a temporary directory,
    # run the way cron runs it: /bin/sh, a bare PATH, no terminal, stdin closed.
    repo = Path(__file__).resolve().parent.parent
    line = next(text for text in (repo / "docs" / "operating.md").read_text().splitlines()
                if text.startswith("*/15 * * * * "))
    command = line.split(" ", 5)[5]
    campaign = tmp_path / "campaigns" / "spring"
    campaign.mkdir(parents=True)
    write_manifest(campaign, vod=2, mps=1, name="week-01")
    env_file = tmp_path / "credentials.env"
    async with running_emulator(emulator_settings(rate=20)) as emulator:
        env_file.write_text(f"TENCENTCLOUD_SECRET_ID={SECRET_ID}\n"
                            f"TENCENTCLOUD_SECRET_KEY={SECRET_KEY}\n"
                            f"BATCHER_ENDPOINT={emulator.url}\n")
        for placeholder, real in {
            "/srv/batcher": str(repo),
            "/etc/batcher/credentials.env": str(env_file),
            "campaigns/spring/": str(campaign) + "/",
            "/var/log/batcher/spring-submit.log": str(tmp_path / "log" / "spring.log"),
            "/var/lib/node_exporter/textfile/batcher_spring.prom": str(tmp_path / "b.prom"),
        }.items():
            assert placeholder in command
            command = command.replace(placeholder, real)
        process = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", command, env={"PATH": "/usr/bin:/bin"},
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    assert stdout == b"" and stderr == b"", "quiet: cron mails nothing"
    assert event_counts(campaign / "week-01.ledger.jsonl") == {"submitted": 3}
    assert metrics_of(tmp_path / "b.prom")


async def test_the_readme_daily_limit_line_holds_the_limit_as_written(tmp_path):
    # The README's cron line with a daily limit, its limit lowered to 2 images and its paths
    # pointed into a temporary directory: cron's /bin/sh, batcher on PATH, no terminal.
    repo = Path(__file__).resolve().parent.parent
    line = next(text for text in (repo / "README.md").read_text().splitlines()
                if text.startswith("*/10 * * * * ") and "BATCHER_DAILY_IMAGES=" in text)
    command = line.split(" ", 5)[5]
    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()
    write_manifest(campaigns, vod=2, mps=2, name="week-01")
    for placeholder, real in {"BATCHER_DAILY_IMAGES=5000": "BATCHER_DAILY_IMAGES=2",
                              "/srv/campaigns": str(campaigns),
                              "/var/log/batcher.log": str(tmp_path / "batcher.log")}.items():
        assert placeholder in command
        command = command.replace(placeholder, real)
    async with running_emulator(emulator_settings(rate=20)) as emulator:
        env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
               "TENCENTCLOUD_SECRET_ID": SECRET_ID, "TENCENTCLOUD_SECRET_KEY": SECRET_KEY,
               "BATCHER_ENDPOINT": emulator.url,
               "BATCHER_RATE_STORE": f"file:{tmp_path / 'rate.json'}"}
        process = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", command, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
        created = emulator.stats()["images_created"]
    assert process.returncode == 75, stderr.decode()
    assert stdout == b"" and stderr == b"", "quiet: cron mails nothing"
    assert sum(created.values()) == 2
    assert "--daily-images 2 reached" in (tmp_path / "batcher.log").read_text()


# --- every exit reaches the log file and the metrics file ---------------------------------


def exit_code_in(metrics_file, manifest):
    return metrics_of(metrics_file)[("batcher_run_exit_code", (("manifest", str(manifest)),))]


async def test_a_quiet_successful_run_writes_its_summary_to_the_log_file(tmp_path):
    manifest = write_manifest(tmp_path, vod=2, mps=1)
    log_file = tmp_path / "batcher.log"
    async with running_emulator(emulator_settings(rate=20)) as emulator:
        code, stdout, stderr = await run_cli("submit", str(manifest), "--endpoint", emulator.url,
                                             "--quiet", "--log-file", str(log_file))
    assert (code, stdout, stderr) == (0, "", "")
    last = log_file.read_text().splitlines()[-1]
    assert TIMESTAMPED.match(last)
    assert f"run ended, exit code 0: {manifest}: 3 submitted" in last


async def test_a_broken_manifest_reaches_the_log_and_the_metrics_as_exit_2(tmp_path):
    manifest = write_manifest(tmp_path, vod=2, mps=0)
    metrics_file, log_file = tmp_path / "batcher.prom", tmp_path / "batcher.log"
    async with running_emulator(emulator_settings(rate=20)) as emulator:
        code, _, _ = await run_cli("submit", str(manifest), "--endpoint", emulator.url,
                                   "--quiet", "--metrics-file", str(metrics_file))
        assert (code, exit_code_in(metrics_file, manifest)) == (0, 0)
        manifest.write_text(manifest.read_text() + "  - {Prompt: 'x', Colour: red}\n")
        code, _, stderr = await run_cli(
            "submit", str(manifest), "--endpoint", emulator.url, "--quiet",
            "--metrics-file", str(metrics_file), "--log-file", str(log_file))
    assert code == 2
    assert exit_code_in(metrics_file, manifest) == 2
    samples = metrics_of(metrics_file)
    assert samples[("batcher_last_success_timestamp_seconds", (("manifest", str(manifest)),))] > 0
    log_text = log_file.read_text()
    assert "Colour" in log_text and " ERROR " in log_text, log_text
    assert "run ended, exit code 2" in log_text
    assert "Colour" in stderr


async def test_missing_credentials_reach_the_log_and_the_metrics_as_exit_2(tmp_path):
    manifest = write_manifest(tmp_path, vod=1, mps=0)
    metrics_file, log_file = tmp_path / "batcher.prom", tmp_path / "batcher.log"
    env = cli_env(HOME=str(tmp_path))
    del env["TENCENTCLOUD_SECRET_ID"], env["TENCENTCLOUD_SECRET_KEY"]
    code, _, _ = await run_cli("submit", str(manifest), "--quiet", "--metrics-file",
                               str(metrics_file), "--log-file", str(log_file), env=env)
    assert code == 2
    assert exit_code_in(metrics_file, manifest) == 2
    assert "no Tencent Cloud credentials" in log_file.read_text()


async def test_a_held_lock_reaches_the_log_and_the_metrics_as_exit_3(tmp_path):
    manifest = write_manifest(tmp_path, vod=1, mps=0)
    metrics_file, log_file = tmp_path / "batcher.prom", tmp_path / "batcher.log"
    holder = open_ledger(manifest.with_suffix(".ledger.jsonl"))  # this process holds the lock
    try:
        code, _, stderr = await run_cli("submit", str(manifest), "--quiet", "--endpoint",
                                        "http://127.0.0.1:9", "--metrics-file",
                                        str(metrics_file), "--log-file", str(log_file))
    finally:
        await holder.close()
    assert code == 3, stderr
    assert exit_code_in(metrics_file, manifest) == 3
    assert "is held by" in log_file.read_text()


async def test_a_missing_manifest_still_reaches_the_metrics_under_the_name_given(tmp_path):
    metrics_file = tmp_path / "batcher.prom"
    missing = tmp_path / "gone.yaml"
    code, _, _ = await run_cli("submit", str(missing), "--metrics-file", str(metrics_file))
    assert code == 2
    assert exit_code_in(metrics_file, missing) == 2
