"""docs/index.md#commands: `plan` and `status` output, bad input as one line and exit 2, nothing
sent."""

from __future__ import annotations

import json

from batcher.emulator.config import FaultConfig
from batcher.emulator.runner import running_emulator
from tests.helpers import cli_env, creates, emulator_settings, run_cli, write_manifest


async def test_plan_counts_tasks_per_service_and_the_time_at_the_cap_without_credentials(
        tmp_path):
    manifest = write_manifest(tmp_path, vod=40, mps=10)
    env = cli_env(HOME=str(tmp_path))
    del env["TENCENTCLOUD_SECRET_ID"], env["TENCENTCLOUD_SECRET_KEY"]
    code, stdout, stderr = await run_cli("plan", str(manifest), env=env)
    assert code == 0, stderr
    rows = {line.split()[0]: line.split()[1:] for line in stdout.splitlines()[2:5]}
    assert stdout.splitlines()[1].split() == ["service", "tasks", "images", "done", "not_sent",
                                              "resend", "held"]
    assert rows["vod"] == ["40", "40", "0", "40", "0", "0"]
    assert rows["mps"] == ["10", "10", "0", "10", "0", "0"]
    assert "2.0 s at 20 requests/s" in stdout, "40 vod tasks at 20/s; mps runs alongside"
    assert not manifest.with_suffix(".ledger.jsonl").exists()


async def test_plan_json_prints_one_line_per_task_with_key_session_id_and_params(tmp_path):
    manifest = write_manifest(tmp_path, vod=2, mps=1)
    code, stdout, _ = await run_cli("plan", str(manifest), "--json")
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert code == 0 and len(lines) == 3
    assert all(set(line) == {"key", "service", "session_id", "params", "images"}
               for line in lines)
    vod = [line for line in lines if line["service"] == "vod"]
    assert all(line["params"]["SessionId"] == line["session_id"] for line in vod)
    assert [line["session_id"] for line in lines if line["service"] == "mps"] == [None]


async def test_plan_after_a_run_shows_what_the_ledger_has_done(tmp_path):
    manifest = write_manifest(tmp_path, vod=3, mps=2)
    async with running_emulator(emulator_settings()) as emulator:
        await run_cli("submit", str(manifest), "--endpoint", emulator.url, "--rate", "0")
    write_manifest(tmp_path, vod=5, mps=2)
    _, stdout, _ = await run_cli("plan", str(manifest))
    rows = {line.split()[0]: line.split()[1:] for line in stdout.splitlines()[2:5]}
    assert rows["vod"] == ["5", "5", "3", "2", "0", "0"]
    assert rows["mps"] == ["2", "2", "2", "0", "0", "0"]


async def test_bad_manifest_is_one_line_per_error_exit_2_and_nothing_is_sent(tmp_path):
    manifest = tmp_path / "bad.yaml"
    manifest.write_text("service: vod\ndefaults: {vod: {SubAppId: 1, ModelName: GEM, "
                        "ModelVersion: 2.5}}\ntasks:\n  - {Promt: a cat}\n")
    async with running_emulator(emulator_settings()) as emulator:
        code, stdout, stderr = await run_cli("submit", str(manifest), "--endpoint", emulator.url)
        requests = creates(emulator)
    assert code == 2 and stdout == "" and requests == 0
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert all(str(manifest) in line for line in lines) and len(lines) >= 2
    assert any(":2:" in line and "quote it" in line for line in lines)
    assert any(":4:" in line and "did you mean 'Prompt'" in line for line in lines)
    assert not manifest.with_suffix(".ledger.jsonl").exists()


async def test_a_manifest_broken_between_runs_exits_2_and_keeps_its_ledger(tmp_path):
    manifest = write_manifest(tmp_path, vod=3, mps=1)
    ledger = manifest.with_suffix(".ledger.jsonl")
    async with running_emulator(emulator_settings()) as emulator:
        code, _, _ = await run_cli("submit", str(manifest), "--endpoint", emulator.url,
                                   "--rate", "0")
        assert code == 0
        before = ledger.read_bytes()
        manifest.write_text(manifest.read_text() + "  - {Prompt: a new task, Seed: many}\n")
        code, stdout, stderr = await run_cli("submit", str(manifest), "--endpoint", emulator.url)
        sent = creates(emulator)
    assert code == 2 and stdout == "" and "Seed" in stderr and "Traceback" not in stderr
    assert sent == 4, "nothing sent by the second run"
    assert ledger.read_bytes() == before


async def test_usage_errors_exit_2_without_traceback(tmp_path):
    manifest = write_manifest(tmp_path, vod=1, mps=0)
    for args in (["submit", str(tmp_path / "missing.yaml")],
                 ["submit", str(manifest), "--endpoint", "http://10.1.2.3:80"],
                 ["submit", str(manifest), "--max-runtime", "soon"],
                 ["status"]):
        code, _, stderr = await run_cli(*args)
        assert code == 2, args
        assert "Traceback" not in stderr and stderr.strip(), args


async def test_status_groups_failures_by_error_code(tmp_path):
    manifest = write_manifest(tmp_path, vod=2, mps=2)
    faults = FaultConfig(fail_codes=(("FailedOperation", 1.0),))
    async with running_emulator(emulator_settings(faults=faults)) as emulator:
        code, _, _ = await run_cli("submit", str(manifest), "--endpoint", emulator.url,
                                   "--rate", "0", "--quiet")
    assert code == 1
    _, text, _ = await run_cli("status", str(manifest))
    assert "FailedOperation: 4 (needs --retry-failed)" in text
    _, as_json, _ = await run_cli("status", "--ledger", str(manifest.with_suffix(".ledger.jsonl")),
                                  "--json")
    report = json.loads(as_json)
    assert report["services"] == {"vod": {"failed_permanent": 2}, "mps": {"failed_permanent": 2}}
    assert [(f["code"], f["count"], f["retryable"]) for f in report["failures"]] == [
        ("FailedOperation", 4, 0)]


async def test_secret_key_never_appears_in_output_ledger_or_logs(tmp_path):
    manifest = write_manifest(tmp_path, vod=2, mps=2)
    secret = "never-print-this-secret-key"
    env = cli_env(TENCENTCLOUD_SECRET_KEY=secret)
    async with running_emulator(emulator_settings()) as emulator:  # refuses: wrong key
        code, stdout, stderr = await run_cli("submit", str(manifest), "--endpoint", emulator.url,
                                             "--log-file", str(tmp_path / "run.log"), env=env)
    assert code == 2
    for text in (stdout, stderr, (tmp_path / "run.log").read_text(),
                 manifest.with_suffix(".ledger.jsonl").read_text()):
        assert secret not in text


async def test_a_manifest_with_no_task_exits_2_naming_the_file(tmp_path):
    manifest = tmp_path / "empty.csv"
    manifest.write_text("Prompt,SubAppId,ModelName,ModelVersion\n", encoding="utf-8")
    code, stdout, stderr = await run_cli("plan", str(manifest))
    assert code == 2 and not stdout
    assert stderr.strip() == (f"batcher: {manifest}: no task: the CSV has a header but no "
                              "rows: add one row per task")


async def test_plan_json_of_a_manifest_invalid_at_its_last_row_prints_no_task(tmp_path):
    manifest = tmp_path / "late-error.csv"
    rows = "".join(f"prompt {n},251007502,GEM,2.5\n" for n in range(50))
    manifest.write_text("Prompt,SubAppId,ModelName,ModelVersion\n" + rows + "last,x,GEM,2.5\n",
                        encoding="utf-8")
    code, stdout, stderr = await run_cli("plan", str(manifest), "--json")
    assert code == 2 and stdout == ""
    assert f"{manifest}:row 52" in stderr and "Traceback" not in stderr
