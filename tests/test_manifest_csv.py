"""CSV manifests and includes (docs/manifests.md): dotted headers, empty cells, typed and JSON
cells, variables, quoting, blank rows, the byte order mark, and reading as a stream.

Manifests are written to a temporary directory; tests/helpers.py loads, validates and expands
them the way the CLI does.
"""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from batcher.manifest import load_manifest
from tests.helpers import (
    MANIFEST_HEAD,
    VOD_CELLS,
    VOD_COLUMNS,
    expand_job,
    prompts_of,
    write_job,
)

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = ["jobs/example.yaml", "jobs/example.csv", "jobs/all-features.yaml"]


# --- CSV -------------------------------------------------------------------------------------


def test_csv_dotted_headers_set_nested_parameters(tmp_path: Path) -> None:
    path = write_job(
        tmp_path,
        (
            "service,Prompt,ModelName,OutputConfig.AspectRatio,ExtraParameters.LogoAdd,"
            f"{VOD_COLUMNS.replace(',ModelName', '')}\n"
            "vod,a cat,GEM,16:9,,251007502,2.5\n"
            "mps,a dog,Hunyuan,,1,,\n"
        ),
        "jobs.csv",
    )
    vod_task, mps_task = expand_job(path)
    assert vod_task.params["OutputConfig"] == {"AspectRatio": "16:9"}
    assert mps_task.params == {
        "ModelName": "Hunyuan",
        "Prompt": "a dog",
        "ExtraParameters": {"LogoAdd": 1},
    }


def test_csv_empty_cell_leaves_the_default(tmp_path: Path) -> None:
    write_job(
        tmp_path, "Prompt,NegativePrompt,OutputConfig.AspectRatio\na,,\nb,sharp,1:1\n", "rows.csv"
    )
    path = write_job(
        tmp_path,
        MANIFEST_HEAD.replace("mps:", "NegativePrompt: blurry\n  mps:")
        + "  OutputConfig: {AspectRatio: '16:9', StorageMode: Temporary}\n"
        + "csv: rows.csv\n",
    )
    first, second = expand_job(path)
    assert first.params["NegativePrompt"] == "blurry"
    assert first.params["OutputConfig"] == {"AspectRatio": "16:9", "StorageMode": "Temporary"}
    assert second.params["NegativePrompt"] == "sharp"
    assert second.params["OutputConfig"] == {"AspectRatio": "1:1", "StorageMode": "Temporary"}


def test_csv_cells_are_converted_to_each_services_parameter_types(tmp_path: Path) -> None:
    path = write_job(
        tmp_path,
        (
            f"service,Prompt,{VOD_COLUMNS},Seed,TasksPriority,EnhancePrompt,OutputConfig.OutputImageCount\n"
            f"vod,a,{VOD_CELLS},42,-3,Enabled,2\n"
            "mps,b,,Hunyuan,,,,yes,\n"
        ),
        "typed.csv",
    )
    vod_task, mps_task = expand_job(path)
    assert vod_task.params["ModelVersion"] == "2.5"  # a string parameter stays a string
    assert vod_task.params["Seed"] == 42
    assert vod_task.params["TasksPriority"] == -3
    assert vod_task.params["EnhancePrompt"] == "Enabled"  # vod: a literal string
    assert vod_task.params["OutputConfig"] == {"OutputImageCount": 2}
    assert mps_task.params["EnhancePrompt"] is True  # mps: a boolean


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        ("true", True),
        ("TRUE", True),
        ("yes", True),
        ("1", True),
        ("false", False),
        ("No", False),
        ("0", False),
    ],
)
def test_csv_boolean_cells_accept_true_false_yes_no_1_0(
    tmp_path: Path, cell: str, value: bool
) -> None:
    path = write_job(
        tmp_path, f"service,Prompt,ModelName,EnhancePrompt\nmps,a,Hunyuan,{cell}\n", "flags.csv"
    )
    assert expand_job(path)[0].params["EnhancePrompt"] is value


def test_csv_json_cell_gives_a_list_of_objects(tmp_path: Path) -> None:
    files = json.dumps([{"Type": "Url", "Url": "https://example.com/a.jpg"}])
    cell = '"' + files.replace('"', '""') + '"'
    path = write_job(tmp_path, f"{VOD_COLUMNS},FileInfos\n{VOD_CELLS},{cell}\n", "files.csv")
    assert expand_job(path)[0].params["FileInfos"] == json.loads(files)


def test_csv_lower_case_column_is_a_template_variable(tmp_path: Path) -> None:
    write_job(tmp_path, "animal,Prompt\nheron,\nowl,an owl by itself\n", "animals.csv")
    path = write_job(tmp_path, MANIFEST_HEAD + 'prompt: "a {animal}"\ncsv: animals.csv\n')
    assert prompts_of(expand_job(path)) == ["a heron", "an owl by itself"]


def test_csv_rows_use_the_matrix_like_any_task(tmp_path: Path) -> None:
    write_job(tmp_path, 'Prompt\n"a cat, {style}"\na dog\n', "rows.csv")
    path = write_job(tmp_path, MANIFEST_HEAD + "matrix:\n  style: [ink, oil]\ncsv: rows.csv\n")
    tasks = expand_job(path)
    assert prompts_of(tasks) == ["a cat, ink", "a cat, oil", "a dog"]
    assert [task.origin for task in tasks] == [
        f"{tmp_path / 'rows.csv'}:row 2 (style=ink)",
        f"{tmp_path / 'rows.csv'}:row 2 (style=oil)",
        f"{tmp_path / 'rows.csv'}:row 3",
    ]


def test_csv_path_is_relative_to_the_manifest(tmp_path: Path) -> None:
    write_job(tmp_path, "Prompt\na cat\n", "jobs/data/rows.csv")
    path = write_job(tmp_path, MANIFEST_HEAD + "csv: data/rows.csv\n", "jobs/job.yaml")
    assert prompts_of(expand_job(path)) == ["a cat"]
    assert load_manifest(path).csv_path == tmp_path / "jobs/data/rows.csv"


def test_manifest_names_the_csv_its_rows_come_from(tmp_path: Path) -> None:
    bare = write_job(tmp_path, f"Prompt,{VOD_COLUMNS}\na,{VOD_CELLS}\n", "bare.csv")
    assert load_manifest(bare).csv_path == bare
    assert load_manifest(write_job(tmp_path, MANIFEST_HEAD + "prompt: a\n")).csv_path is None


def test_csv_with_a_byte_order_mark_reads_its_first_header(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(f"\ufeffPrompt,{VOD_COLUMNS}\na cat,{VOD_CELLS}\n".encode())
    assert prompts_of(expand_job(path)) == ["a cat"]


def test_csv_quoted_cells_keep_commas_and_newlines_and_rows_count_records(
    tmp_path: Path,
) -> None:
    path = write_job(
        tmp_path,
        (f'Prompt,{VOD_COLUMNS}\n"a cat, on a mat\nat night",{VOD_CELLS}\na dog,{VOD_CELLS}\n'),
        "multi.csv",
    )
    tasks = expand_job(path)
    assert prompts_of(tasks) == ["a cat, on a mat\nat night", "a dog"]
    assert [task.origin for task in tasks] == [f"{path}:row 2", f"{path}:row 3"]


def test_csv_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = write_job(tmp_path, f"Prompt,{VOD_COLUMNS}\na cat,{VOD_CELLS}\n\n\n", "blank.csv")
    assert prompts_of(expand_job(path)) == ["a cat"]


@pytest.mark.parametrize("last_line", [",,,\n", ",,,", "   \n", "\r\n"])
def test_csv_a_blank_last_line_is_not_a_task(tmp_path: Path, last_line: str) -> None:
    path = tmp_path / "blank-last.csv"
    path.write_text(f"Prompt,{VOD_COLUMNS}\na cat,{VOD_CELLS}\n{last_line}", encoding="utf-8")
    assert prompts_of(expand_job(path)) == ["a cat"]


def test_csv_is_read_as_a_stream_not_held_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    rows = (f"prompt number {index},{VOD_CELLS}\n" for index in range(20_000))
    path.write_text(f"Prompt,{VOD_COLUMNS}\n" + "".join(rows), encoding="utf-8")
    manifest = load_manifest(path)
    tracemalloc.start()
    try:
        report = manifest.validate()
        count = sum(1 for _ in manifest.tasks())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.total == count == 20_000
    # 20,000 tasks held at once would take well over 10 MB; a stream needs a few hundred KB
    # (plus 8 bytes a task for duplicate detection).
    assert peak < 3_000_000, peak
