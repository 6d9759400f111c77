"""Issue 12 through the real CLI: credentials and endpoints as a real account needs them, the
per-task view, the messages of a stopped run, and the resume flags and secrets that a broken CLI
would get wrong. Each runs `python -m batcher` against the emulator on loopback."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from batcher.emulator.config import EmulatorConfig, FaultConfig, TemporaryKey
from batcher.emulator.runner import running_emulator
from tests.helpers import (
    SECRET_ID,
    SECRET_KEY,
    cli_env,
    creates,
    emulator_settings,
    last_events,
    metadata_service,
    run_cli,
    write_manifest,
)


def no_credentials_env(tmp_path, **extra):
    env = cli_env(HOME=str(tmp_path), **extra)
    del env["TENCENTCLOUD_SECRET_ID"], env["TENCENTCLOUD_SECRET_KEY"]
    return env


# --- endpoints ------------------------------------------------------------------------------


async def test_per_service_endpoints_send_each_service_to_its_own_url(tmp_path):
    manifest = write_manifest(tmp_path, vod=3, mps=2)
    async with running_emulator(emulator_settings()) as for_vod, \
            running_emulator(emulator_settings()) as for_mps:
        code, _, stderr = await run_cli("submit", str(manifest), "--rate", "0",
                                        "--endpoint", f"vod={for_vod.url}",
                                        "--endpoint", f"mps={for_mps.url}")
        created = [tuple(e.stats()["services"][name]["created"] for name in ("vod", "mps"))
                   for e in (for_vod, for_mps)]
    assert code == 0, stderr
    assert created == [(3, 0), (0, 2)]


async def test_the_endpoint_variable_takes_per_service_urls_too(tmp_path):
    manifest = write_manifest(tmp_path, vod=1, mps=2)
    async with running_emulator(emulator_settings()) as for_vod, \
            running_emulator(emulator_settings()) as for_mps:
        env = cli_env(BATCHER_ENDPOINT=f"vod={for_vod.url},mps={for_mps.url}")
        code, _, stderr = await run_cli("submit", str(manifest), "--rate", "0", env=env)
        created = [tuple(e.stats()["services"][name]["created"] for name in ("vod", "mps"))
                   for e in (for_vod, for_mps)]
    assert code == 0, stderr
    assert created == [(1, 0), (0, 2)]


async def test_one_endpoint_still_takes_every_service(tmp_path):
    manifest = write_manifest(tmp_path, vod=2, mps=2)
    async with running_emulator(emulator_settings()) as emulator:
        code, _, _ = await run_cli("submit", str(manifest), "--rate", "0",
                                   "--endpoint", emulator.url)
        stats = emulator.stats()["services"]
    assert code == 0
    assert (stats["vod"]["created"], stats["mps"]["created"]) == (2, 2)


@pytest.mark.parametrize(("endpoints", "message"), [
    (["cvm=http://127.0.0.1:1"], "unknown service 'cvm'"),
    (["http://127.0.0.1:1", "http://127.0.0.1:2"], "given twice"),
    (["https://me:hunter2@vod.tencentcloudapi.com"], "user info"),
    (["http://example.com"], "plain http"),
])
async def test_bad_endpoints_are_one_line_exit_2_before_anything(tmp_path, endpoints, message):
    manifest = write_manifest(tmp_path, vod=1, mps=0)
    args = [arg for endpoint in endpoints for arg in ("--endpoint", endpoint)]
    code, stdout, stderr = await run_cli("submit", str(manifest), *args)
    assert code == 2 and message in stderr and "Traceback" not in stderr
    assert "hunter2" not in stderr + stdout
    assert not manifest.with_suffix(".ledger.jsonl").exists()


# --- credentials through the CLI ------------------------------------------------------------


async def test_tccli_token_variable_and_a_named_profile_reach_the_emulator(tmp_path):
    profile = tmp_path / ".tencentcloud" / "credentials"
    profile.parent.mkdir()
    profile.write_text(f"[default]\nsecret_id = AKIDwrong\nsecret_key = wrong\n"
                       f"[batch]\nsecret_id = {SECRET_ID}\nsecret_key = {SECRET_KEY}\n"
                       f"token = session-token\n")
    runs = {
        "env": cli_env(HOME=str(tmp_path), TENCENTCLOUD_TOKEN="session-token"),
        "option": no_credentials_env(tmp_path),
        "profile-env": no_credentials_env(tmp_path, TENCENTCLOUD_PROFILE="batch"),
        "default": no_credentials_env(tmp_path),
    }
    codes = {}
    async with running_emulator(emulator_settings(token="session-token")) as emulator:
        for name, env in runs.items():
            manifest = write_manifest(tmp_path, vod=1, mps=1, name=name)
            options = ["--profile", "batch"] if name == "option" else []
            codes[name] = (await run_cli("submit", str(manifest), "--endpoint", emulator.url,
                                         *options, env=env))[0]
    assert codes == {"env": 0, "option": 0, "profile-env": 0, "default": 2}


async def test_on_a_cvm_the_role_credentials_sign_the_run(tmp_path):
    manifest = write_manifest(tmp_path, vod=2, mps=2)
    issued = [("AKIDcvmRole0000000", "role-key", "role-token", 4_000_000_000)]
    config = emulator_settings(temporary_keys=(TemporaryKey(*issued[0][:3]),))
    async with metadata_service(issued) as (service, url), \
            running_emulator(config) as emulator:
        code, stdout, stderr = await run_cli(
            "submit", str(manifest), "--endpoint", emulator.url, "--rate", "0",
            env=no_credentials_env(tmp_path, BATCHER_METADATA_URL=url))
    assert code == 0, stderr
    assert service.credential_asks == 1
    assert "role-key" not in stdout + stderr and "role-token" not in stdout + stderr


# --- plan and status take directories; the per-task view ------------------------------------


async def test_plan_and_status_take_a_directory_as_submit_does(tmp_path):
    campaign = tmp_path / "jobs"
    campaign.mkdir()
    write_manifest(campaign, vod=2, mps=0, name="a")
    write_manifest(campaign, vod=0, mps=3, name="b")
    code, stdout, stderr = await run_cli("plan", str(campaign))
    assert code == 0 and "Traceback" not in stderr, stderr
    assert "a.yaml" in stdout and "b.yaml" in stdout
    code, stdout, stderr = await run_cli("status", str(campaign), "--json")
    assert code == 0, stderr
    reports = [json.loads(line) for line in stdout.splitlines()]
    assert [r["services"] for r in reports] == [{"vod": {"not_sent": 2}}, {"mps": {"not_sent": 3}}]


async def test_in_doubt_tasks_are_named_and_listed_with_their_source_line(tmp_path):
    manifest = write_manifest(tmp_path, vod=1, mps=2)
    faults = FaultConfig(drop_after_create_rate=1.0)
    async with running_emulator(emulator_settings(faults=faults)) as emulator:
        code, stdout, _ = await run_cli("submit", str(manifest), "--endpoint", emulator.url,
                                        "--max-attempts", "2")
    assert code == 1
    assert f"batcher status {manifest} --tasks --state in_doubt" in stdout
    code, table, _ = await run_cli("status", str(manifest), "--tasks", "--state", "in_doubt")
    assert code == 0
    rows = table.splitlines()
    assert rows[0].split() == ["key", "service", "state", "task_id", "source", "prompt", "error"]
    in_doubt = [key for key, event in last_events(manifest.with_suffix(".ledger.jsonl")).items()
                if event == "sending"]
    assert len(rows) == 3 and sorted(row.split()[0] for row in rows[1:]) == sorted(in_doubt)
    assert all(re.search(rf"{re.escape(str(manifest))}:\d+", row) for row in rows[1:])
    assert "mps picture 0" in table and "mps picture 1" in table
    code, as_csv, _ = await run_cli("status", str(manifest), "--tasks", "--csv")
    listed = list(csv.DictReader(io.StringIO(as_csv)))
    assert len(listed) == 3
    states = {row["prompt"]: row["state"] for row in listed}
    assert states["mps picture 0"] == states["mps picture 1"] == "in_doubt"
    vod_row = next(row for row in listed if row["service"] == "vod")
    assert vod_row["state"] == "duplicate", "resent, and refused as a duplicate: created once"
    assert vod_row["error"] == "" and vod_row["task_id"] == ""


async def test_failed_tasks_are_listed_with_their_error_and_task_ids_with_done_ones(tmp_path):
    manifest = write_manifest(tmp_path, vod=2, mps=1)
    faults = FaultConfig(fail_codes=(("InvalidParameterValue.Prompt", 1.0),))
    async with running_emulator(emulator_settings(faults=faults)) as emulator:
        await run_cli("submit", str(manifest), "--endpoint", emulator.url, "--rate", "0")
    _, stdout, _ = await run_cli("status", str(manifest), "--tasks", "--state", "failed",
                                 "--csv")
    rows = list(csv.DictReader(io.StringIO(stdout)))
    assert len(rows) == 3
    assert all(row["error"].startswith("InvalidParameterValue.Prompt: ") for row in rows)
    code, _, stderr = await run_cli("status", str(manifest), "--tasks", "--state", "faild")
    assert code == 2 and "not a state" in stderr


async def test_a_listing_from_the_ledger_alone_has_the_task_ids(tmp_path):
    manifest = write_manifest(tmp_path, vod=1, mps=1)
    async with running_emulator(emulator_settings()) as emulator:
        await run_cli("submit", str(manifest), "--endpoint", emulator.url, "--rate", "0")
    _, stdout, _ = await run_cli("status", "--ledger", str(manifest.with_suffix(
        ".ledger.jsonl")), "--tasks", "--csv", "--state", "done")
    rows = list(csv.DictReader(io.StringIO(stdout)))
    assert sorted(row["service"] for row in rows) == ["mps", "vod"]
    assert all("-AigcImage-" in row["task_id"] for row in rows)


# --- messages ------------------------------------------------------------------------------


async def test_an_account_wide_refusal_says_what_to_fix_not_to_run_again(tmp_path):
    manifest = write_manifest(tmp_path, vod=5, mps=0)
    env = cli_env(TENCENTCLOUD_SECRET_KEY="not-the-key")
    async with running_emulator(emulator_settings()) as emulator:
        code, stdout, _ = await run_cli("submit", str(manifest), "--endpoint", emulator.url,
                                        env=env)
    assert code == 2
    assert "run_stopping_error" not in stdout
    assert "run the same command again" not in stdout
    assert "to fix: the signature did not verify" in stdout
    assert "TENCENTCLOUD_SECRET_KEY" in stdout


async def test_a_rate_above_the_api_cap_warns(tmp_path):
    manifest = write_manifest(tmp_path, vod=1, mps=0)
    async with running_emulator(emulator_settings()) as emulator:
        code, _, stderr = await run_cli("submit", str(manifest), "--endpoint", emulator.url,
                                        "--rate", "25")
        _, _, at_cap = await run_cli("submit", str(manifest), "--endpoint", emulator.url,
                                     "--rate", "20")
    assert code == 0
    assert "--rate 25 is above the API's cap of 20" in stderr
    assert "above the API's cap" not in at_cap


# --- resume flags are the user's choice, not the CLI's --------------------------------------


async def test_mps_tasks_in_doubt_are_sent_again_only_with_resend_in_doubt(tmp_path):
    manifest = write_manifest(tmp_path, vod=0, mps=2)
    faults = FaultConfig(drop_after_create_rate=1.0)
    async with running_emulator(emulator_settings(faults=faults)) as emulator:
        assert (await run_cli("submit", str(manifest), "--endpoint", emulator.url))[0] == 1
    async with running_emulator(emulator_settings()) as emulator:
        code, _, _ = await run_cli("submit", str(manifest), "--endpoint", emulator.url)
        assert code == 1
        assert emulator.stats()["services"]["mps"]["created"] == 0, "held without the flag"
        code, _, _ = await run_cli("submit", str(manifest), "--endpoint", emulator.url,
                                   "--resend-in-doubt")
        assert code == 0
        assert emulator.stats()["services"]["mps"]["created"] == 2


async def test_permanent_failures_are_sent_again_only_with_retry_failed(tmp_path):
    manifest = write_manifest(tmp_path, vod=1, mps=1)
    faults = FaultConfig(fail_codes=(("InvalidParameterValue.Prompt", 1.0),))
    async with running_emulator(emulator_settings(faults=faults)) as emulator:
        assert (await run_cli("submit", str(manifest), "--endpoint", emulator.url))[0] == 1
    async with running_emulator(emulator_settings()) as emulator:
        code, _, _ = await run_cli("submit", str(manifest), "--endpoint", emulator.url)
        assert code == 1
        assert creates(emulator) == 0, "held without the flag"
        code, _, _ = await run_cli("submit", str(manifest), "--endpoint", emulator.url,
                                   "--retry-failed")
        assert code == 0
        assert creates(emulator) == 2


# --- the secret key appears nowhere, on a successful run too --------------------------------


async def test_a_successful_run_writes_the_secret_key_nowhere(tmp_path):
    secret = "s3cret-Key-that-must-stay-hidden-0123"
    token = "session-token-that-must-stay-hidden"
    manifest = write_manifest(tmp_path, vod=3, mps=3)
    config = EmulatorConfig(secret_id=SECRET_ID, secret_key=secret, token=token, rate=0,
                            faults=FaultConfig(internal_error_rate=0.3, seed=3))
    env = cli_env(TENCENTCLOUD_SECRET_KEY=secret, TENCENTCLOUD_TOKEN=token)
    outputs = []
    async with running_emulator(config) as emulator:
        for extra in (["--progress", "lines"], ["--json"],
                      ["--log-format", "json", "--quiet"]):
            code, stdout, stderr = await run_cli(
                "submit", str(manifest), "--endpoint", emulator.url, "--log-file",
                str(tmp_path / "run.log"), "--metrics-file", str(tmp_path / "run.prom"),
                *extra, env=env)
            assert code == 0, stderr
            outputs += [stdout, stderr]
        code, stdout, stderr = await run_cli(
            "submit", str(manifest), "--endpoint", emulator.url, "--progress", "lines", env=env)
        outputs += [stdout, stderr]
        for command in (["status", str(manifest)], ["status", str(manifest), "--tasks"],
                        ["plan", str(manifest)]):
            outputs += list((await run_cli(*command, env=env))[1:])
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert {p.name for p in files} >= {"run.log", "run.prom", "job.ledger.jsonl"}
    assert (tmp_path / "run.log").read_text().strip() and any(outputs)
    for text in [*outputs, *(path.read_text(errors="replace") for path in files)]:
        assert secret not in text
        assert token not in text
