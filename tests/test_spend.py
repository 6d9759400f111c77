"""docs/spend.md: images counted beside tasks (per service and model) in `plan`, `plan --json`
and the Python API, on both passes (the whole way and the CSV fast lane)."""

from __future__ import annotations

import json

import batcher
from batcher.emulator.runner import running_emulator
from tests.helpers import emulator_settings, run_cli

JOB = """\
batch: spend
defaults:
  vod: {SubAppId: 251007502, ModelName: GEM, ModelVersion: "2.5",
        OutputConfig: {OutputImageCount: 2}}
  mps: {ModelName: Hunyuan, OutputImageCount: 3}
tasks:
  - {service: vod, Prompt: a cat}
  - {service: vod, Prompt: a dog, ModelVersion: "3.0"}
  - {service: vod, Prompt: a hen, OutputConfig: {OutputImageCount: null}}
  - {service: mps, Prompt: a cow}
"""


def table(stdout: str, header: str) -> dict[str, list[str]]:
    """The rows of the table whose header starts with `header`, by their first cell(s)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == [header])
    width = len(lines[start].split())
    rows = {}
    for line in lines[start + 1:]:
        cells = line.split()
        if len(cells) < width or not all(cell.isdigit() for cell in cells[-(width - 1):]):
            break
        rows[" ".join(cells[:len(cells) - width + 1])] = cells[len(cells) - width + 1:]
    return rows


async def test_plan_counts_images_per_service_and_per_model(tmp_path):
    manifest = tmp_path / "job.yaml"
    manifest.write_text(JOB)
    code, stdout, stderr = await run_cli("plan", str(manifest))
    assert code == 0, stderr
    services = table(stdout, "service")
    assert services["vod"][:2] == ["3", "5"] and services["mps"][:2] == ["1", "3"]
    models = table(stdout, "model")
    assert models == {"mps Hunyuan": ["1", "3", "1", "3"], "vod GEM 2.5": ["2", "3", "2", "3"],
                      "vod GEM 3.0": ["1", "2", "1", "2"]}
    assert "images to send: 8 (mps 3, vod 5)" in stdout


async def test_plan_json_lines_carry_each_tasks_images(tmp_path):
    manifest = tmp_path / "job.yaml"
    manifest.write_text(JOB)
    code, stdout, _ = await run_cli("plan", str(manifest), "--json")
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert code == 0
    assert sorted((line["params"]["Prompt"], line["images"]) for line in lines) == [
        ("a cat", 2), ("a cow", 3), ("a dog", 2), ("a hen", 1)]


async def test_a_csv_counts_images_from_its_cells_on_the_fast_lane(tmp_path):
    manifest = tmp_path / "rows.csv"
    rows = "".join(f"cat {n},251007502,GEM,{'2.5' if n % 2 else '3.0'},{n % 3 + 1}\n"
                   for n in range(30))
    manifest.write_text("Prompt,SubAppId,ModelName,ModelVersion,OutputConfig.OutputImageCount\n"
                        + rows)
    code, stdout, stderr = await run_cli("plan", str(manifest))
    assert code == 0, stderr
    expected_images = sum(n % 3 + 1 for n in range(30))
    assert table(stdout, "service")["vod"][:2] == ["30", str(expected_images)]
    by_model = table(stdout, "model")
    assert by_model["vod GEM 2.5"][0] == by_model["vod GEM 3.0"][0] == "15"
    assert int(by_model["vod GEM 2.5"][1]) + int(by_model["vod GEM 3.0"][1]) == expected_images
    # with a ledger (the keyed pass, fast lane), the same counts and what is left to send
    whole = manifest.read_text()
    manifest.write_text("".join(whole.splitlines(keepends=True)[:11]))  # its first 10 rows
    async with running_emulator(emulator_settings()) as emulator:
        code, _, stderr = await run_cli("submit", str(manifest), "--endpoint", emulator.url,
                                        "--rate", "0")
    assert code == 0, stderr
    manifest.write_text(whole)
    code, stdout, stderr = await run_cli("plan", str(manifest))
    assert code == 0, stderr
    sent_before = sum(n % 3 + 1 for n in range(10))
    assert f"images to send: {expected_images - sent_before}" in stdout
    result = batcher.plan(manifest)
    assert result.services["vod"].images == expected_images
    assert result.services["vod"].images_to_send == expected_images - sent_before
