"""docs/manifests.md#keys-and-sessionids: stable across key order, processes and unrelated edits.

The golden file pins the derivation itself: if `test_key_derivation_matches_the_golden_file`
fails, every batch already in a ledger would be submitted (and billed) again. Regenerate it only
for a deliberate change, with `BATCHER_REGEN_GOLDEN=1 pytest tests/test_keys.py`.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from batcher.api.models import SESSION_ID_MAX
from batcher.manifest import Task, load_manifest
from batcher.manifest.keys import (
    KEY_HEX_CHARS,
    UNKEYED_PARAMS,
    canonical_json,
    session_id_for,
    task_key,
)

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "golden" / "example-keys.json"
GOLDEN_MANIFESTS = ["jobs/example.yaml", "jobs/example.csv"]

DEFAULTS = {"vod": {"SubAppId": 251007502, "ModelName": "GEM", "ModelVersion": "2.5"}}

# Printable text without braces (placeholders) or YAML line breaks.
text = st.text(
    st.characters(
        min_codepoint=32,
        max_codepoint=0x2FFF,
        blacklist_categories=("Cc", "Cs", "Zl", "Zp"),
        blacklist_characters="{}",
    ),
    min_size=1,
    max_size=24,
)
output_config = st.fixed_dictionaries(
    {},
    optional={
        "AspectRatio": st.sampled_from(["1:1", "16:9", "9:16"]),
        "StorageMode": st.sampled_from(["Temporary", "Permanent"]),
        "OutputImageCount": st.integers(1, 9),
        "MediaName": text,
    },
)
vod_task = st.fixed_dictionaries(
    {"Prompt": text},
    optional={
        "NegativePrompt": text,
        "Seed": st.integers(0, 2**31),
        "TasksPriority": st.integers(-10, 10),
        "EnhancePrompt": st.sampled_from(["Enabled", "Disabled"]),
        "OutputConfig": output_config,
        "SessionContext": text,
    },
)
distinct_tasks = st.lists(
    vod_task,
    min_size=1,
    max_size=5,
    # Tasks that differ only in SessionContext are one request, a manifest error.
    unique_by=lambda task: canonical_json({k: v for k, v in task.items() if k != "SessionContext"}),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


def shuffled(value: Any, rng: random.Random) -> Any:
    """The same value with the keys of every mapping in a random order."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {key: shuffled(item, rng) for key, item in items}
    if isinstance(value, list):
        return [shuffled(item, rng) for item in value]
    return value


def manifest_text(tasks: list[dict[str, Any]], rng: random.Random) -> str:
    document = {"service": "vod", "batch": "props", "defaults": DEFAULTS, "tasks": tasks}
    return yaml.safe_dump(shuffled(document, rng), sort_keys=False, allow_unicode=True)


def keys_of(text_of_manifest: str) -> list[str]:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "props.yaml"
        path.write_text(text_of_manifest, encoding="utf-8")
        manifest = load_manifest(path)
        manifest.validate()
        return [task.key for task in manifest.tasks()]


# --- Properties ------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(distinct_tasks, st.randoms(use_true_random=False), st.randoms(use_true_random=False))
def test_key_does_not_depend_on_the_order_of_keys_in_the_file(
    tasks: list[dict[str, Any]], first_order: random.Random, second_order: random.Random
) -> None:
    assert keys_of(manifest_text(tasks, first_order)) == keys_of(manifest_text(tasks, second_order))


@settings(max_examples=5, deadline=None)
@given(distinct_tasks, st.sampled_from(["0", "1", "4242", "random"]))
def test_key_is_the_same_in_another_process(tasks: list[dict[str, Any]], hash_seed: str) -> None:
    text_of_manifest = manifest_text(tasks, random.Random(0))
    program = (
        "import json, sys; from pathlib import Path; from batcher.manifest import load_manifest;"
        "m = load_manifest(Path(sys.argv[1])); m.validate();"
        "print(json.dumps([t.key for t in m.tasks()]))"
    )
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "props.yaml"
        path.write_text(text_of_manifest, encoding="utf-8")
        environment = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(REPO)}
        output = subprocess.run(
            [sys.executable, "-c", program, str(path)],
            env=environment,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    assert json.loads(output) == keys_of(text_of_manifest)


@given(vod_task, text, text)
def test_key_ignores_session_id_and_session_context(
    params: dict[str, Any], session_id: str, context: str
) -> None:
    plain = {name: value for name, value in params.items() if name not in UNKEYED_PARAMS}
    tagged = {**params, "SessionId": session_id[:SESSION_ID_MAX], "SessionContext": context}
    assert task_key("b", "vod", tagged, 0) == task_key("b", "vod", plain, 0)


@settings(max_examples=40, deadline=None)
@given(distinct_tasks, st.data())
def test_editing_one_task_changes_only_that_tasks_key(
    tasks: list[dict[str, Any]], data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(tasks) - 1), label="edited task")
    others = {task["Prompt"] for task in tasks}
    new_prompt = data.draw(text.filter(lambda prompt: prompt not in others), label="new Prompt")
    edited = [dict(task) for task in tasks]
    edited[index]["Prompt"] = new_prompt
    order = random.Random(0)
    before, after = keys_of(manifest_text(tasks, order)), keys_of(manifest_text(edited, order))
    assert [b == a for b, a in zip(before, after, strict=True)] == [
        position != index for position in range(len(tasks))
    ]


@given(st.text(max_size=8), st.sampled_from(["vod", "mps"]), json_values, st.integers(0, 99))
def test_keys_are_128_bit_hex_and_session_ids_fit_the_api(
    batch: str, service: str, value: Any, copy: int
) -> None:
    key = task_key(batch, service, {"Prompt": value}, copy)
    assert len(key) == KEY_HEX_CHARS == 32
    assert set(key) <= set("0123456789abcdef")
    assert len(session_id_for(key)) <= SESSION_ID_MAX


@given(st.integers(0, 5), st.integers(0, 5))
def test_repeat_copies_have_distinct_keys(first: int, second: int) -> None:
    params = {"Prompt": "a cat"}
    same = task_key("b", "mps", params, first) == task_key("b", "mps", params, second)
    assert same == (first == second)


@given(json_values)
def test_canonical_json_is_sorted_compact_utf8_json(value: Any) -> None:
    expected = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert canonical_json(value) == expected


def test_key_is_sha256_of_the_canonical_document() -> None:
    import hashlib

    document = '{"batch":"b","copy":0,"params":{"Prompt":"é","Seed":1},"service":"vod"}'
    expected = hashlib.sha256(document.encode()).hexdigest()[:32]
    assert task_key("b", "vod", {"Seed": 1, "Prompt": "é", "SessionId": "x"}, 0) == expected


# --- Golden keys -----------------------------------------------------------------------------


def golden_entries(tasks: Iterator[Task]) -> list[dict[str, Any]]:
    return [
        {"key": task.key, "service": task.service, "copy": task.copy, "params": task.params}
        for task in tasks
    ]


def current_golden() -> dict[str, Any]:
    golden: dict[str, Any] = {}
    for name in GOLDEN_MANIFESTS:
        manifest = load_manifest(REPO / name)
        manifest.validate()
        golden[name] = {"batch": manifest.batch, "tasks": golden_entries(manifest.tasks())}
    return golden


def test_golden_file_is_regenerated_only_on_request() -> None:
    if os.environ.get("BATCHER_REGEN_GOLDEN") != "1":
        pytest.skip("set BATCHER_REGEN_GOLDEN=1 to rewrite tests/golden/example-keys.json")
    GOLDEN.parent.mkdir(exist_ok=True)
    text_of_golden = json.dumps(current_golden(), indent=2, ensure_ascii=False, sort_keys=True)
    GOLDEN.write_text(text_of_golden + "\n", encoding="utf-8")


def test_key_derivation_matches_the_golden_file() -> None:
    """Fails only if keys.py changed how keys or SessionIds derive: every ledger would miss."""
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    for name, recorded in golden.items():
        for entry in recorded["tasks"]:
            key = task_key(recorded["batch"], entry["service"], entry["params"], entry["copy"])
            assert key == entry["key"], (
                f"{name}: the key derivation changed; every resumed batch would resubmit"
            )
            if entry["service"] == "vod":
                assert entry["params"]["SessionId"] == session_id_for(key)


def test_example_manifests_expand_to_the_golden_tasks() -> None:
    """Fails if the examples or their expansion changed; regenerate if that was deliberate."""
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert current_golden() == golden, (
        "jobs/example.* no longer expand to tests/golden/example-keys.json: if you changed them "
        "on purpose, run BATCHER_REGEN_GOLDEN=1 pytest tests/test_keys.py"
    )
