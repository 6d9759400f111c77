"""Hostile manifests (issue 17, item 5): every one ends by itself with exit 2 and one line
naming the file (and line or row) and the fix: no traceback, no hang, nothing sent.

Hang-prone cases run `python -m batcher plan` in a subprocess with a timeout (a hang fails the
test instead of holding the suite); the limits' values are in batcher/manifest/files.py,
yaml_bounds.py and coerce.py (docs/manifests.md).
"""

from __future__ import annotations

import itertools
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from batcher.emulator.runner import running_emulator
from batcher.manifest import ManifestError, load_manifest
from batcher.manifest.files import MAX_YAML_BYTES
from tests.helpers import cli_env, emulator_settings, run_cli

VOD_COLUMNS = "SubAppId,ModelName,ModelVersion"
VOD_CELLS = "251007502,GEM,2.5"
VOD_DEFAULTS = (
    "service: vod\ndefaults: {SubAppId: 251007502, ModelName: GEM, ModelVersion: '2.5'}\n"
)


def plan_in_subprocess(path: Path, timeout: float = 60,
                       memory: int | None = None) -> subprocess.CompletedProcess[str]:
    """`batcher plan PATH`; a hang past `timeout` fails the test (the process is killed)."""

    def limit_memory() -> None:
        if memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    try:
        return subprocess.run(
            [sys.executable, "-m", "batcher", "plan", str(path)],
            capture_output=True, text=True, timeout=timeout, env=cli_env(),
            stdin=subprocess.DEVNULL, preexec_fn=limit_memory,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`batcher plan {path.name}` still running after {timeout} s")


def assert_one_line(stderr: str, *parts: str) -> None:
    """One message line, no traceback, naming every part (file, line or row, the fix)."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    for part in parts:
        assert part in lines[0], stderr


def billion_laughs(directory: Path) -> Path:
    lines = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    names = "abcdefghi"
    for before, name in itertools.pairwise(names):
        lines.append(f"{name}: &{name} [{', '.join([f'*{before}'] * 9)}]")
    path = directory / "laughs.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


# --- YAML aliases, recursion and depth -------------------------------------------------------


def test_billion_laughs_is_refused_naming_the_line_not_a_hang(tmp_path: Path) -> None:
    result = plan_in_subprocess(billion_laughs(tmp_path))
    assert result.returncode == 2
    # `g` (line 7) is the first mapping past the limit: 9**7 values.
    assert_one_line(result.stderr, "laughs.yaml:7:", "aliases", "fewer aliases")


def test_a_recursive_alias_is_one_line_not_a_recursion_error(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("a: &a [*a]\ntasks: [{Prompt: x}]\n")
    result = plan_in_subprocess(path)
    assert result.returncode == 2
    assert_one_line(result.stderr, "loop.yaml:1:", "contains it")


@pytest.mark.parametrize("block", [False, True], ids=["flow", "block"])
def test_deep_yaml_nesting_is_one_line_naming_the_line(tmp_path: Path, block: bool) -> None:
    path = tmp_path / "deep.yaml"
    if block:  # a list in a list ... written as indented `- ` items, 400 levels
        text = "tasks:\n" + "".join("  " * level + "-\n" for level in range(1, 400))
    else:
        text = "tasks: " + "[" * 900 + "]" * 900 + "\n"
    path.write_text(text)
    result = plan_in_subprocess(path)
    assert result.returncode == 2
    assert_one_line(result.stderr, "deep.yaml:")


def test_aliases_within_the_limit_still_work(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(VOD_DEFAULTS + "tasks:\n  - &p {Prompt: a cat}\n  - {<<: *p, Seed: 1}\n")
    assert [task.params["Prompt"] for task in load_manifest(path).tasks()] == ["a cat"] * 2


# --- files that are not regular files --------------------------------------------------------


@pytest.mark.parametrize("suffix", [".yaml", ".csv"])
def test_a_fifo_is_refused_not_waited_on(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"pipe{suffix}"
    os.mkfifo(path)
    result = plan_in_subprocess(path)
    assert result.returncode == 2
    assert_one_line(result.stderr, f"pipe{suffix}", "FIFO", "not a manifest file")


@pytest.mark.parametrize("suffix", [".yaml", ".csv"])
@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_a_symlink_to_a_device_is_refused(tmp_path: Path, suffix: str, device: str) -> None:
    path = tmp_path / f"device{suffix}"
    path.symlink_to(device)
    result = plan_in_subprocess(path, memory=3 << 30)
    assert result.returncode == 2
    assert_one_line(result.stderr, f"device{suffix}", "character device", "not a manifest file")


def test_a_directory_named_like_a_manifest_is_refused_in_process(tmp_path: Path) -> None:
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(ManifestError) as raised:
        load_manifest(tmp_path / "dir.yaml")
    assert len(raised.value.messages) == 1
    assert "dir.yaml: is a directory" in raised.value.messages[0]


def test_a_yaml_manifest_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as stream:  # sparse: no disk used
        stream.write(b"tasks: []\n")
        stream.truncate(MAX_YAML_BYTES + 1)
    result = plan_in_subprocess(path)
    assert result.returncode == 2
    assert_one_line(result.stderr, "huge.yaml", "64 MiB", "CSV")


def test_a_csv_of_zero_bytes_without_line_end_is_refused_in_bounded_memory(
    tmp_path: Path,
) -> None:
    path = tmp_path / "zeros.csv"
    with path.open("wb") as stream:  # what `cp /dev/zero` leaves: 4 GiB, sparse
        stream.write(b"Prompt\n")
        stream.truncate(4 << 30)
    result = plan_in_subprocess(path, memory=3 << 30)
    assert result.returncode == 2
    assert_one_line(result.stderr, "zeros.csv:row 2:")


def test_a_csv_row_without_line_end_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    with path.open("w") as stream:
        stream.write("Prompt\n")
        stream.write("a," * (5 << 20))  # 10 MiB of short cells, never a line end
    result = plan_in_subprocess(path, memory=3 << 30)
    assert result.returncode == 2
    assert_one_line(result.stderr, "long.csv:row 2:", "8 MiB")


# --- hostile cells and characters ------------------------------------------------------------


def test_a_deeply_nested_json_cell_is_one_line_naming_row_and_column(tmp_path: Path) -> None:
    path = tmp_path / "deep.csv"
    path.write_text(f"Prompt,{VOD_COLUMNS},FileInfos\n"
                    f"a cat,{VOD_CELLS},\"{'[' * 60_000}{']' * 60_000}\"\n")
    result = plan_in_subprocess(path)
    assert result.returncode == 2
    assert_one_line(result.stderr, "deep.csv:row 2:", "FileInfos", "nested more than 100")


def test_a_json_cell_nested_within_the_limit_is_still_json(tmp_path: Path) -> None:
    path = tmp_path / "ok.csv"
    path.write_text(f"Prompt,{VOD_COLUMNS},FileInfos\n"
                    f'a cat,{VOD_CELLS},"[{{""Type"": ""Url"", ""Url"": ""https://x/a.png""}}]"\n')
    (task,) = load_manifest(path).tasks()
    assert task.params["FileInfos"][0]["Url"] == "https://x/a.png"


@pytest.mark.parametrize("row", [2, 4])
def test_a_nul_in_a_csv_cell_is_refused_naming_the_row(tmp_path: Path, row: int) -> None:
    path = tmp_path / "nul.csv"
    cells = [f"cat {n},{VOD_CELLS}" for n in range(2, 6)]
    cells[row - 2] = f'"a\x00b",{VOD_CELLS}'
    path.write_text(f"Prompt,{VOD_COLUMNS}\n" + "\n".join(cells) + "\n")
    result = plan_in_subprocess(path)
    assert result.returncode == 2
    assert_one_line(result.stderr, f"nul.csv:row {row}:", "NUL", "remove it")


def test_a_nul_in_a_csv_header_is_refused_naming_row_1(tmp_path: Path) -> None:
    path = tmp_path / "nul.csv"
    path.write_text("Pro\x00mpt\na cat\n")
    with pytest.raises(ManifestError) as raised:
        load_manifest(path)
    assert raised.value.messages == [f"{path}:row 1: a NUL character (byte 0x00): remove it, "
                                     "or save the file as UTF-8"]


def test_a_nul_in_a_yaml_manifest_is_one_line_naming_its_line(tmp_path: Path) -> None:
    path = tmp_path / "nul.yaml"
    path.write_text(VOD_DEFAULTS + 'tasks:\n  - Prompt: "a\x00b"\n')
    result = plan_in_subprocess(path)
    assert result.returncode == 2
    assert_one_line(result.stderr, "nul.yaml:4:", "NUL", "remove it")


def test_another_control_character_in_yaml_is_one_line_naming_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bell.yaml"
    path.write_text(VOD_DEFAULTS + 'tasks:\n  - Prompt: "a\x07b"\n')
    result = plan_in_subprocess(path)
    assert result.returncode == 2
    assert_one_line(result.stderr, "bell.yaml:4:", "not allowed in YAML")


# --- line ends: CRLF and LF files are the same tasks ----------------------------------------


def keys_and_prompts(path: Path) -> list[tuple[str, str]]:
    return [(task.key, task.params["Prompt"]) for task in load_manifest(path).tasks()]


@pytest.mark.parametrize("newline", ["\r\n", "\r"], ids=["crlf", "cr"])
def test_a_csv_saved_with_other_line_ends_has_the_same_keys(tmp_path: Path, newline: str) -> None:
    rows = [f"Prompt,{VOD_COLUMNS}", f'"two\nlines",{VOD_CELLS}', f"one line,{VOD_CELLS}",
            f'"three\n\nlines",{VOD_CELLS}']
    (tmp_path / "lf").mkdir()
    (tmp_path / "other").mkdir()
    lf = tmp_path / "lf" / "jobs.csv"
    other = tmp_path / "other" / "jobs.csv"
    lf.write_bytes("\n".join(rows).encode() + b"\n")
    other.write_bytes("\n".join(rows).replace("\n", newline).encode() + newline.encode())
    assert keys_and_prompts(other) == keys_and_prompts(lf)
    assert [prompt for _, prompt in keys_and_prompts(other)] == [
        "two\nlines", "one line", "three\n\nlines"]


def test_a_yaml_manifests_csv_saved_with_crlf_has_the_same_keys(tmp_path: Path) -> None:
    keys = []
    for name, newline in (("lf", "\n"), ("crlf", "\r\n")):
        directory = tmp_path / name
        directory.mkdir()
        (directory / "rows.csv").write_bytes('Prompt\n"a\nb"\nc\n'.replace("\n", newline).encode())
        manifest = directory / "job.yaml"
        manifest.write_bytes((VOD_DEFAULTS + "csv: rows.csv\n").replace("\n", newline).encode())
        keys.append([task.key for task in load_manifest(manifest).tasks()])
    assert keys[0] == keys[1]
    assert len(keys[0]) == 2


# --- every command that reads a manifest keeps the promise, and sends nothing ---------------


@pytest.mark.parametrize("command", ["plan", "submit", "status", "collect"])
async def test_every_command_refuses_a_hostile_manifest_before_sending(
    tmp_path: Path, command: str
) -> None:
    hostile = [billion_laughs(tmp_path)]
    nul = tmp_path / "nul.csv"
    nul.write_text(f"Prompt,{VOD_COLUMNS}\n\"a\x00b\",{VOD_CELLS}\n")
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    hostile += [nul, fifo]
    async with running_emulator(emulator_settings()) as emulator:
        for path in hostile:
            extra = ["--endpoint", emulator.url] if command in ("submit", "collect") else []
            code, _, stderr = await run_cli(command, str(path), *extra, timeout=60)
            assert code == 2, (path.name, stderr)
            assert_one_line(stderr, path.name)
        created = [emulator.stats()["services"][name]["created"] for name in ("vod", "mps")]
    assert created == [0, 0]
