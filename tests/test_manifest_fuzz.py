"""Fuzzed manifests (issue 17, item 6): the valid jobs/ examples with bytes flipped, inserted and
cut, deep nesting, aliases, NULs, other encodings and line ends, fed to the real loader.

Whatever arrives, loading and both passes end in tasks or in a `ManifestError` (one line per
mistake, exit 2): never another exception, which the CLI would print as a traceback. Hypothesis'
deadline bounds the work per example. A few mutants also go through `batcher submit` against the
emulator: exit 2, no traceback, nothing created.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batcher.emulator.runner import running_emulator
from batcher.manifest import ManifestError, TaskKey, load_manifest
from tests.helpers import emulator_settings, run_cli

JOBS = Path(__file__).resolve().parent.parent / "jobs"
EXAMPLES = ("example.yaml", "all-features.yaml", "example.csv", "all-features-prompts.csv")

SNIPPETS = (
    b"[" * 3000, b"{" * 3000 + b"}" * 3000, b'"' + b"[" * 5000 + b'"', b"\x00", b"\r", b"\r\n",
    b"\xef\xbb\xbf", b"\xff\xfe", b"\xc3", b"&a ", b"*a", b"<<: *a\n", b"&a [*a, *a, *a]",
    b"{Prompt: {x}}", b"{{", b"}", b"\t", b"- ", b": ", b",", b'"', b"\n", b"!!python/object ",
    b"!!binary AAAA", b"? ", b"%YAML 1.1\n---\n", b"---\n", b"...\n", b"\x1b[2J", "\u2028".encode(),
    "🐈 ".encode(), "ä".encode("latin-1"), "中文".encode("gb18030"),
)


@st.composite
def mutants(draw: st.DrawFn) -> tuple[str, bytes]:
    """A jobs/ example and its text after a few random edits."""
    name = draw(st.sampled_from(EXAMPLES))
    data = bytearray((JOBS / name).read_bytes())
    if draw(st.booleans()):  # another encoding or line-end convention, the whole file
        data = bytearray(draw(st.sampled_from([
            bytes(data).replace(b"\n", b"\r\n"),
            bytes(data).replace(b"\n", b"\r"),
            bytes(data).decode().encode("utf-16"),
            b"\xef\xbb\xbf" + bytes(data),
        ])))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        edit = draw(st.sampled_from(["flip", "insert", "snippet", "cut", "repeat"]))
        if edit == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif edit == "snippet":
            data[at:at] = draw(st.sampled_from(SNIPPETS))
        elif edit == "cut":
            del data[at:at + draw(st.integers(1, 40))]
        elif edit == "repeat":  # a line copied: duplicate keys, rows, tasks
            start = data.rfind(b"\n", 0, at) + 1
            end = data.find(b"\n", at)
            data[start:start] = data[start:end + 1 if end >= 0 else len(data)]
    return name, bytes(data)


def load_and_expand(directory: Path, name: str, data: bytes) -> None:
    """What `plan` and `submit` do with a manifest: load, the checking pass with keys, the
    streaming pass. Only ManifestError may come out."""
    shutil.copy(JOBS / "all-features-prompts.csv", directory / "all-features-prompts.csv")
    path = directory / name
    path.write_bytes(data)
    keys: list[TaskKey] = []
    try:
        manifest = load_manifest(path)
        manifest.validate(on_key=keys.append)
        manifest.validate()
        tasks = list(manifest.tasks())
    except ManifestError as error:
        assert error.messages, "a ManifestError says what is wrong"
        assert all(isinstance(message, str) and message for message in error.messages)
        return
    assert [task.key for task in tasks] == [key.key for key in keys]


@settings(max_examples=150, deadline=2000, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(mutants())
def test_a_mutated_manifest_loads_or_is_a_manifest_error(mutant: tuple[str, bytes]) -> None:
    name, data = mutant
    with tempfile.TemporaryDirectory() as directory:
        load_and_expand(Path(directory), name, data)


@settings(max_examples=40, deadline=2000, derandomize=True)
@given(st.sampled_from(EXAMPLES), st.integers(1, 400), st.sampled_from(["[", "{", "- ", "  -"]))
def test_deep_nesting_anywhere_is_a_manifest_error(name: str, depth: int, opener: str) -> None:
    data = (JOBS / name).read_bytes()
    at = len(data) // 2
    if opener in ("[", "{"):
        closer = "]" if opener == "[" else "}"
        nest = (opener * depth + closer * depth).encode()
    else:
        nest = "".join("\n" + "  " * level + "-" for level in range(depth)).encode() + b"\n"
    with tempfile.TemporaryDirectory() as directory:
        load_and_expand(Path(directory), name, data[:at] + nest + data[at:])


def invalid_mutants(count: int) -> list[tuple[str, bytes]]:
    """`count` mutants (fixed seeds) that the loader refuses: for the CLI, nothing may be sent."""
    found: list[tuple[str, bytes]] = []
    rng = random.Random(17)
    while len(found) < count:
        name = EXAMPLES[len(found) % len(EXAMPLES)]
        data = bytearray((JOBS / name).read_bytes())
        at = rng.randrange(len(data))
        data[at:at] = rng.choice(SNIPPETS)
        with tempfile.TemporaryDirectory() as directory:
            shutil.copy(JOBS / "all-features-prompts.csv", Path(directory))
            path = Path(directory) / name
            path.write_bytes(bytes(data))
            try:
                load_manifest(path).validate()
            except ManifestError:
                found.append((name, bytes(data)))
    return found


@pytest.mark.parametrize(("name", "data"), invalid_mutants(3))
async def test_a_mutated_manifest_through_the_cli_sends_nothing(
    tmp_path: Path, name: str, data: bytes
) -> None:
    shutil.copy(JOBS / "all-features-prompts.csv", tmp_path)
    path = tmp_path / name
    path.write_bytes(data)
    async with running_emulator(emulator_settings()) as emulator:
        code, _, stderr = await run_cli("submit", str(path), "--endpoint", emulator.url,
                                        timeout=60)
        created = [emulator.stats()["services"][s]["created"] for s in ("vod", "mps")]
    assert code == 2, stderr
    assert "Traceback" not in stderr
    assert stderr.startswith("batcher: ") and name in stderr
    assert created == [0, 0]


@settings(max_examples=30, deadline=2000, derandomize=True)
@given(st.integers(1, 70_000), st.sampled_from(["[", "{", '{"a":', "[{"]), st.booleans())
def test_a_deep_json_cell_is_a_manifest_error(depth: int, opener: str, closed: bool) -> None:
    closers = {"[": "]", "{": "}", '{"a":': "}", "[{": "}]"}
    cell = opener * depth + "1" + (closers[opener] * depth if closed else "")
    data = (
        "Prompt,SubAppId,ModelName,ModelVersion,FileInfos\n"
        f'a cat,251007502,GEM,2.5,"{cell.replace(chr(34), chr(34) * 2)}"\n'
    ).encode()
    with tempfile.TemporaryDirectory() as directory:
        load_and_expand(Path(directory), "deep.csv", data)
