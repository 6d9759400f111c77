"""docs/manifests.md: how a YAML or CSV manifest expands into tasks, and what its errors say.

Each test is named after the rule it proves. Manifests are written to a temporary directory; the
helpers below load, validate and expand them the way the CLI does.
"""

from __future__ import annotations

import json
import textwrap
import tracemalloc
from pathlib import Path

import pytest

from batcher.api.models import request_model
from batcher.exceptions import ManifestError
from batcher.manifest import Manifest, Task, ValidationReport, load_manifest
from batcher.manifest.keys import session_id_for, task_key

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = ["jobs/example.yaml", "jobs/example.csv", "jobs/all-features.yaml"]

HEAD = """\
service: vod
defaults:
  vod: {SubAppId: 251007502, ModelName: GEM, ModelVersion: "2.5"}
  mps: {ModelName: Hunyuan}
"""
"""A valid start for a manifest: the required parameters of both services."""

VOD_COLUMNS = "SubAppId,ModelName,ModelVersion"
VOD_CELLS = "251007502,GEM,2.5"


def write(directory: Path, text: str, name: str = "job.yaml") -> Path:
    """Write a manifest; an indented body (after HEAD, if it starts so) is dedented."""
    head = HEAD if text.startswith(HEAD) else ""
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(head + textwrap.dedent(text[len(head) :]), encoding="utf-8")
    return path


def expand(path: Path) -> list[Task]:
    manifest = load_manifest(path)
    manifest.validate()
    return list(manifest.tasks())


def errors(path: Path, max_errors: int = 100) -> ManifestError:
    """The ManifestError of a manifest, from loading or from validating it."""
    with pytest.raises(ManifestError) as caught:
        load_manifest(path).validate(max_errors=max_errors)
    return caught.value


def one_error(path: Path) -> str:
    error = errors(path)
    assert len(error.messages) == 1, error.messages
    return error.messages[0]


def prompts(tasks: list[Task]) -> list[str]:
    return [task.params.get("Prompt", "") for task in tasks]


# --- How tasks combine -----------------------------------------------------------------------


def test_explicit_tasks_come_first_then_csv_rows_in_file_order(tmp_path: Path) -> None:
    write(tmp_path, "Prompt\nrow one\nrow two\n", "more.csv")
    path = write(
        tmp_path, HEAD + "tasks:\n  - {Prompt: task one}\n  - {Prompt: task two}\ncsv: more.csv\n"
    )
    assert prompts(expand(path)) == ["task one", "task two", "row one", "row two"]


def test_manifest_without_tasks_or_csv_is_one_implicit_task(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + 'prompt: "a quiet harbour"\n')
    tasks = expand(path)
    assert prompts(tasks) == ["a quiet harbour"]
    assert tasks[0].origin == f"{path}:5"  # the `prompt:` line


def test_an_empty_tasks_list_is_no_task_and_an_error_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + 'prompt: "a quiet harbour"\ntasks: []\n')
    assert one_error(path) == (
        f"{path}: no task: the tasks list is empty: add a task, or drop `tasks:` for the "
        "implicit one"
    )


def test_a_header_only_csv_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, f"Prompt,{VOD_COLUMNS}\n", "header-only.csv")
    assert one_error(path) == (
        f"{path}: no task: the CSV has a header but no rows: add one row per task"
    )


def test_service_as_a_matrix_variable_sends_each_task_to_both_with_their_defaults(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        """\
        defaults:
          NegativePrompt: blurry
          vod: {SubAppId: 251007502, ModelName: GEM, ModelVersion: "2.5"}
          mps: {ModelName: Hunyuan, ExtraParameters: {AspectRatio: "1:1"}}
        matrix:
          service: [vod, mps]
        tasks:
          - Prompt: a cat
          - {Prompt: a dog, service: mps}
        """,
    )
    tasks = expand(path)
    assert [(task.service, task.params["Prompt"]) for task in tasks] == [
        ("vod", "a cat"), ("mps", "a cat"), ("mps", "a dog")
    ]
    vod_cat, mps_cat, _ = tasks
    assert vod_cat.params["SubAppId"] == 251007502 and "ExtraParameters" not in vod_cat.params
    assert mps_cat.params["ExtraParameters"] == {"AspectRatio": "1:1"}
    assert mps_cat.params["NegativePrompt"] == vod_cat.params["NegativePrompt"] == "blurry"
    assert vod_cat.key != mps_cat.key
    assert [task.service for task in load_manifest(path).tasks("mps")] == ["mps", "mps"]


def test_service_matrix_sends_csv_rows_without_a_service_to_both(tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text("Prompt,service\na cat,\na dog,mps\n", encoding="utf-8")
    path = write(tmp_path, "\n".join(HEAD.splitlines()[1:]) + "\nmatrix: {service: [vod, mps]}\n"
                 "csv: rows.csv\n")
    assert [(t.service, t.params["Prompt"]) for t in expand(path)] == [
        ("vod", "a cat"), ("mps", "a cat"), ("mps", "a dog")
    ]


def test_service_at_the_top_and_in_the_matrix_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "matrix: {service: [vod, mps]}\n")
    assert one_error(path) == f"{path}:1: service is set here and is a matrix variable: keep one"


def test_task_is_multiplied_only_by_matrix_variables_it_uses(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
        matrix:
          style: [ink, oil]
          size: [small, large]
        tasks:
          - {Prompt: "a cat, {style}"}
          - {Prompt: "a dog"}
        """,
    )
    assert prompts(expand(path)) == ["a cat, ink", "a cat, oil", "a dog"]


def test_task_using_two_matrix_variables_gets_their_product_in_matrix_order(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
        matrix:
          style: [ink, oil]
          size: [small, large]
        tasks:
          - {Prompt: "{size} cat, {style}"}
        """,
    )
    assert prompts(expand(path)) == [
        "small cat, ink",
        "large cat, ink",
        "small cat, oil",
        "large cat, oil",
    ]


def test_matrix_variables_used_through_defaults_and_prompt_multiply_the_task(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        """\
        service: vod
        defaults:
          vod: {SubAppId: 1, ModelName: GEM, ModelVersion: "2.5",
                OutputConfig: {AspectRatio: "{ratio}"}}
        prompt: "a {animal}"
        matrix:
          ratio: ["1:1", "16:9"]
        tasks:
          - {animal: cat}
        """,
    )
    tasks = expand(path)
    assert [task.params["OutputConfig"]["AspectRatio"] for task in tasks] == ["1:1", "16:9"]
    assert prompts(tasks) == ["a cat", "a cat"]


def test_task_setting_a_matrix_variable_itself_is_not_multiplied_by_it(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
        prompt: "a cat, {style}"
        matrix:
          style: [ink, oil]
        tasks:
          - {style: pencil}
        """,
    )
    assert prompts(expand(path)) == ["a cat, pencil"]


def test_matrix_origin_names_the_task_line_and_the_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
        matrix:
          style: [ink]
        tasks:
          - {Prompt: "a cat, {style}"}
        """,
    )
    assert [task.origin for task in expand(path)] == [f"{path}:8 (style=ink)"]


def test_repeat_copies_every_task_with_its_own_key_and_session_id(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "repeat: 3\ntasks:\n  - {Prompt: a cat}\n")
    tasks = expand(path)
    assert [task.copy for task in tasks] == [0, 1, 2]
    assert len({task.key for task in tasks}) == 3
    assert len({task.session_id for task in tasks}) == 3
    assert {json.dumps({**t.params, "SessionId": None}) for t in tasks} == {
        json.dumps({**tasks[0].params, "SessionId": None})
    }


def test_validation_report_counts_tasks_per_service_with_copies(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD + "repeat: 2\ntasks:\n  - {Prompt: a}\n  - {Prompt: b}\n"
        "  - {Prompt: c, service: mps}\n",
    )
    report = load_manifest(path).validate()
    assert report == ValidationReport("job", {"vod": 4, "mps": 2})
    assert report.total == 6


def test_batch_defaults_to_the_manifest_file_stem(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "tasks:\n  - {Prompt: a cat}\n", "spring-cats.yaml")
    manifest = load_manifest(path)
    assert manifest.batch == "spring-cats"
    assert manifest.path == path
    task = expand(path)[0]
    assert task.key == task_key("spring-cats", "vod", task.params, 0)


def test_batch_is_part_of_every_key(tmp_path: Path) -> None:
    body = "tasks:\n  - {Prompt: a cat}\n"
    first = expand(write(tmp_path, HEAD + "batch: one\n" + body))[0]
    second = expand(write(tmp_path, HEAD + "batch: two\n" + body))[0]
    assert first.params.keys() == second.params.keys()
    assert first.key != second.key


def test_task_service_overrides_the_manifest_service(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "tasks:\n  - {Prompt: a}\n  - {Prompt: b, service: mps}\n")
    assert [task.service for task in expand(path)] == ["vod", "mps"]


def test_service_must_be_vod_or_mps(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "tasks:\n  - {Prompt: a, service: VOD}\n")
    assert one_error(path) == f"{path}:6: service must be vod or mps, got 'VOD' (str)"


def test_yaml_task_without_any_service_is_an_error_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path, "tasks:\n  - {Prompt: a, ModelName: Hunyuan}\n")
    message = one_error(path)
    assert message.startswith(f"{path}:2: no service: add `service: vod` (or mps)")


def test_bare_csv_without_service_column_sends_vod_tasks(tmp_path: Path) -> None:
    path = write(tmp_path, f"Prompt,{VOD_COLUMNS}\na cat,{VOD_CELLS}\n", "cats.csv")
    tasks = expand(path)
    assert [task.service for task in tasks] == ["vod"]
    assert load_manifest(path).batch == "cats"


# --- Defaults and the prompt template ----------------------------------------------------------


def test_defaults_merge_deeply_service_section_over_common_and_task_over_both(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        """\
        service: vod
        defaults:
          NegativePrompt: common
          OutputConfig: {StorageMode: Temporary, AspectRatio: "1:1", OutputFormat: png}
          vod:
            SubAppId: 1
            ModelName: GEM
            ModelVersion: "2.5"
            NegativePrompt: vod-section
            OutputConfig: {AspectRatio: "16:9", Resolution: 2K}
        tasks:
          - {Prompt: a cat, OutputConfig: {Resolution: 4K}}
        """,
    )
    params = expand(path)[0].params
    assert params["NegativePrompt"] == "vod-section"
    assert params["OutputConfig"] == {
        "StorageMode": "Temporary",
        "AspectRatio": "16:9",
        "OutputFormat": "png",
        "Resolution": "4K",
    }


def test_lists_replace_the_default_list_whole(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        service: vod
        defaults:
          vod:
            SubAppId: 1
            ModelName: GEM
            ModelVersion: "2.5"
            FileInfos: [{Type: Url, Url: "https://a/1.jpg"}, {Type: Url, Url: "https://a/2.jpg"}]
        tasks:
          - {Prompt: a cat, FileInfos: [{Type: File, FileId: "528"}]}
          - {Prompt: a dog}
        """,
    )
    first, second = expand(path)
    assert first.params["FileInfos"] == [{"Type": "File", "FileId": "528"}]
    assert len(second.params["FileInfos"]) == 2


def test_null_in_a_task_drops_the_default(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD.replace("mps:", "NegativePrompt: blurry\n  mps:")
        + "tasks:\n  - {Prompt: a cat, NegativePrompt: null}\n  - {Prompt: a dog}\n",
    )
    first, second = expand(path)
    assert "NegativePrompt" not in first.params
    assert second.params["NegativePrompt"] == "blurry"


def test_service_section_applies_only_to_its_service(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        service: mps
        defaults:
          vod: {SubAppId: 1, ModelName: GEM, ModelVersion: "2.5"}
          mps: {ModelName: Hunyuan, ExtraParameters: {AspectRatio: "1:1"}}
        tasks:
          - {Prompt: a cat}
          - {Prompt: a dog, service: vod}
        """,
    )
    mps_task, vod_task = expand(path)
    assert mps_task.params == {
        "ModelName": "Hunyuan",
        "Prompt": "a cat",
        "ExtraParameters": {"AspectRatio": "1:1"},
    }
    assert "ExtraParameters" not in vod_task.params
    assert vod_task.params["ModelName"] == "GEM"


def test_prompt_template_fills_prompt_unless_the_task_gives_prompt(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
        prompt: "a {animal} at dawn"
        tasks:
          - {animal: heron}
          - {Prompt: a red car}
        """,
    )
    assert prompts(expand(path)) == ["a heron at dawn", "a red car"]


def test_prompt_template_and_a_default_prompt_together_are_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        service: vod
        defaults:
          Prompt: a dog
        prompt: a cat
        """,
    )
    assert one_error(path) == (f"{path}:4: both `prompt` and a Prompt under defaults: keep one")


def test_lower_case_defaults_are_default_variables(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        service: vod
        defaults:
          palette: muted
          vod: {SubAppId: 1, ModelName: GEM, ModelVersion: "2.5", palette: bright}
          mps: {ModelName: Hunyuan}
        prompt: "a cat, {palette} colours"
        tasks:
          - {}
          - {service: mps}
          - {palette: pastel}
        """,
    )
    assert prompts(expand(path)) == [
        "a cat, bright colours",
        "a cat, muted colours",
        "a cat, pastel colours",
    ]


# --- Placeholders ------------------------------------------------------------------------------


def test_placeholders_are_filled_in_any_string_nested_ones_too(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
        tasks:
          - animal: owl
            Prompt: "an {animal}"
            OutputConfig: {MediaName: "{animal}-1"}
            FileInfos: [{Type: Url, Url: "https://example.com/{animal}.jpg"}]
        """,
    )
    params = expand(path)[0].params
    assert params["Prompt"] == "an owl"
    assert params["OutputConfig"] == {"MediaName": "owl-1"}
    assert params["FileInfos"] == [{"Type": "Url", "Url": "https://example.com/owl.jpg"}]


def test_double_braces_are_literal_braces(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
        tasks:
          - {animal: cat, Prompt: "a {animal} saying {{hello}}", ExtInfo: '{{"k": 1}}'}
        """,
    )
    params = expand(path)[0].params
    assert params["Prompt"] == "a cat saying {hello}"
    assert params["ExtInfo"] == '{"k": 1}'


def test_unknown_placeholder_is_an_error_naming_it_and_the_task_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
        prompt: "a {animal}"
        tasks:
          - {animl: cat}
        """,
    )
    assert one_error(path) == (
        f"{path}:7: vod task: unknown placeholder {{animal}} in Prompt (from prompt, line 5): "
        "set animal on the task, under defaults or in matrix (the task has 'animl': a typo?)"
    )


def test_malformed_braces_are_an_error_saying_how_to_write_a_brace(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "tasks:\n  - {Prompt: 'a {cat'}\n")
    assert one_error(path) == (
        f"{path}:6: Prompt: unmatched '{{': write '{{{{' for a literal brace"
    )


def test_templated_integer_parameter_takes_the_parameter_type(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
        matrix:
          seed: [1, 2]
        tasks:
          - {Prompt: a cat, Seed: "{seed}"}
        """,
    )
    assert [task.params["Seed"] for task in expand(path)] == [1, 2]


def test_lower_case_variable_named_like_a_parameter_is_an_error_if_unused(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "tasks:\n  - {prompt: a cat}\n")
    assert one_error(path) == (
        f"{path}:6: vod task: 'prompt' is a template variable that no placeholder uses: "
        "for the parameter write 'Prompt' (upper-case)"
    )


# --- CSV -------------------------------------------------------------------------------------


def test_csv_dotted_headers_set_nested_parameters(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        (
            "service,Prompt,ModelName,OutputConfig.AspectRatio,ExtraParameters.LogoAdd,"
            f"{VOD_COLUMNS.replace(',ModelName', '')}\n"
            "vod,a cat,GEM,16:9,,251007502,2.5\n"
            "mps,a dog,Hunyuan,,1,,\n"
        ),
        "jobs.csv",
    )
    vod_task, mps_task = expand(path)
    assert vod_task.params["OutputConfig"] == {"AspectRatio": "16:9"}
    assert mps_task.params == {
        "ModelName": "Hunyuan",
        "Prompt": "a dog",
        "ExtraParameters": {"LogoAdd": 1},
    }


def test_csv_empty_cell_leaves_the_default(tmp_path: Path) -> None:
    write(
        tmp_path, "Prompt,NegativePrompt,OutputConfig.AspectRatio\na,,\nb,sharp,1:1\n", "rows.csv"
    )
    path = write(
        tmp_path,
        HEAD.replace("mps:", "NegativePrompt: blurry\n  mps:")
        + "  OutputConfig: {AspectRatio: '16:9', StorageMode: Temporary}\n"
        + "csv: rows.csv\n",
    )
    first, second = expand(path)
    assert first.params["NegativePrompt"] == "blurry"
    assert first.params["OutputConfig"] == {"AspectRatio": "16:9", "StorageMode": "Temporary"}
    assert second.params["NegativePrompt"] == "sharp"
    assert second.params["OutputConfig"] == {"AspectRatio": "1:1", "StorageMode": "Temporary"}


def test_csv_cells_are_converted_to_each_services_parameter_types(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        (
            f"service,Prompt,{VOD_COLUMNS},Seed,TasksPriority,EnhancePrompt,OutputConfig.OutputImageCount\n"
            f"vod,a,{VOD_CELLS},42,-3,Enabled,2\n"
            "mps,b,,Hunyuan,,,,yes,\n"
        ),
        "typed.csv",
    )
    vod_task, mps_task = expand(path)
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
    path = write(
        tmp_path, f"service,Prompt,ModelName,EnhancePrompt\nmps,a,Hunyuan,{cell}\n", "flags.csv"
    )
    assert expand(path)[0].params["EnhancePrompt"] is value


def test_csv_json_cell_gives_a_list_of_objects(tmp_path: Path) -> None:
    files = json.dumps([{"Type": "Url", "Url": "https://example.com/a.jpg"}])
    cell = '"' + files.replace('"', '""') + '"'
    path = write(tmp_path, f"{VOD_COLUMNS},FileInfos\n{VOD_CELLS},{cell}\n", "files.csv")
    assert expand(path)[0].params["FileInfos"] == json.loads(files)


def test_csv_lower_case_column_is_a_template_variable(tmp_path: Path) -> None:
    write(tmp_path, "animal,Prompt\nheron,\nowl,an owl by itself\n", "animals.csv")
    path = write(tmp_path, HEAD + 'prompt: "a {animal}"\ncsv: animals.csv\n')
    assert prompts(expand(path)) == ["a heron", "an owl by itself"]


def test_csv_rows_use_the_matrix_like_any_task(tmp_path: Path) -> None:
    write(tmp_path, 'Prompt\n"a cat, {style}"\na dog\n', "rows.csv")
    path = write(tmp_path, HEAD + "matrix:\n  style: [ink, oil]\ncsv: rows.csv\n")
    tasks = expand(path)
    assert prompts(tasks) == ["a cat, ink", "a cat, oil", "a dog"]
    assert [task.origin for task in tasks] == [
        f"{tmp_path / 'rows.csv'}:row 2 (style=ink)",
        f"{tmp_path / 'rows.csv'}:row 2 (style=oil)",
        f"{tmp_path / 'rows.csv'}:row 3",
    ]


def test_csv_path_is_relative_to_the_manifest(tmp_path: Path) -> None:
    write(tmp_path, "Prompt\na cat\n", "jobs/data/rows.csv")
    path = write(tmp_path, HEAD + "csv: data/rows.csv\n", "jobs/job.yaml")
    assert prompts(expand(path)) == ["a cat"]
    assert load_manifest(path).csv_path == tmp_path / "jobs/data/rows.csv"


def test_manifest_names_the_csv_its_rows_come_from(tmp_path: Path) -> None:
    bare = write(tmp_path, f"Prompt,{VOD_COLUMNS}\na,{VOD_CELLS}\n", "bare.csv")
    assert load_manifest(bare).csv_path == bare
    assert load_manifest(write(tmp_path, HEAD + "prompt: a\n")).csv_path is None


def test_csv_with_a_byte_order_mark_reads_its_first_header(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(f"\ufeffPrompt,{VOD_COLUMNS}\na cat,{VOD_CELLS}\n".encode())
    assert prompts(expand(path)) == ["a cat"]


def test_csv_quoted_cells_keep_commas_and_newlines_and_rows_count_records(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        (f'Prompt,{VOD_COLUMNS}\n"a cat, on a mat\nat night",{VOD_CELLS}\na dog,{VOD_CELLS}\n'),
        "multi.csv",
    )
    tasks = expand(path)
    assert prompts(tasks) == ["a cat, on a mat\nat night", "a dog"]
    assert [task.origin for task in tasks] == [f"{path}:row 2", f"{path}:row 3"]


def test_csv_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = write(tmp_path, f"Prompt,{VOD_COLUMNS}\na cat,{VOD_CELLS}\n\n\n", "blank.csv")
    assert prompts(expand(path)) == ["a cat"]


@pytest.mark.parametrize("last_line", [",,,\n", ",,,", "   \n", "\r\n"])
def test_csv_a_blank_last_line_is_not_a_task(tmp_path: Path, last_line: str) -> None:
    path = tmp_path / "blank-last.csv"
    path.write_text(f"Prompt,{VOD_COLUMNS}\na cat,{VOD_CELLS}\n{last_line}", encoding="utf-8")
    assert prompts(expand(path)) == ["a cat"]


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


# --- Task contents ---------------------------------------------------------------------------


def test_vod_task_sends_a_session_id_derived_from_its_key(tmp_path: Path) -> None:
    task = expand(write(tmp_path, HEAD + "tasks:\n  - {Prompt: a cat}\n"))[0]
    assert task.session_id == session_id_for(task.key)
    assert task.params["SessionId"] == task.session_id


def test_vod_task_with_its_own_session_id_keeps_it_and_its_key_ignores_it(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, HEAD + "tasks:\n  - {Prompt: a cat, SessionId: mine-1}\n")
    task = expand(path)[0]
    assert task.session_id == task.params["SessionId"] == "mine-1"
    plain = expand(write(tmp_path, HEAD + "tasks:\n  - {Prompt: a cat}\n"))[0]
    assert task.key == plain.key


def test_mps_task_has_no_session_id(tmp_path: Path) -> None:
    task = expand(write(tmp_path, HEAD + "tasks:\n  - {Prompt: a cat, service: mps}\n"))[0]
    assert task.session_id is None
    assert "SessionId" not in task.params


def test_task_params_are_the_validated_models_wire_form(tmp_path: Path) -> None:
    for task in expand(REPO / "jobs/all-features.yaml"):
        model = request_model(task.service).model_validate(task.params, strict=True)
        assert model.to_wire() == task.params
        assert task.key == task_key("all-features-demo", task.service, task.params, task.copy)


# --- Errors: files ---------------------------------------------------------------------------


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "tasks:\n  - {Prompt: a cat\n  - {Prompt: b}\n")
    assert one_error(path) == (
        f"{path}:7:5: YAML syntax error: did not find expected ',' or '}}' (while parsing a flow "
        "mapping, from line 6): check indentation, colons and quoting"
    )


def test_missing_manifest_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    assert one_error(path) == f"{path}: no such file: check the path"


def test_directory_is_not_a_manifest(tmp_path: Path) -> None:
    path = tmp_path / "dir.yaml"
    path.mkdir()
    assert one_error(path) == f"{path}: is a directory, not a manifest file"


def test_unknown_file_kind_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "{}", "job.json")
    assert "not a manifest: name it .yaml or .yml" in one_error(path)


def test_empty_manifest_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "# nothing yet\n")
    assert one_error(path).startswith(f"{path}: the manifest is empty")


def test_manifest_that_is_not_a_mapping_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "- Prompt: a cat\n")
    assert one_error(path).startswith(f"{path}:1: a manifest is a mapping")


def test_manifest_not_in_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes(HEAD.encode() + "tasks:\n  - {Prompt: caf\xe9}\n".encode("latin-1"))
    assert one_error(path) == f"{path}:6: not UTF-8 text (byte 0xe9): save it as UTF-8"


def test_missing_csv_names_the_csv_line_of_the_manifest(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "csv: missing.csv\n")
    assert one_error(path) == (
        f"{path}:5: csv: {tmp_path / 'missing.csv'}: no such file: check the path"
    )


def test_csv_not_in_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    rows = f"Prompt,{VOD_COLUMNS}\n" + "".join(f"cat {n},{VOD_CELLS}\n" for n in range(3))
    path.write_bytes(rows.encode() + f"caf\xe9,{VOD_CELLS}\n".encode("latin-1"))
    assert one_error(path) == f"{path}:line 5: not UTF-8 text: save it as UTF-8"


def test_csv_not_in_utf8_far_from_its_start_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    rows = f"Prompt,{VOD_COLUMNS}\n" + "".join(f"cat {n},{VOD_CELLS}\n" for n in range(5000))
    path.write_bytes(rows.encode() + f"caf\xe9,{VOD_CELLS}\n".encode("latin-1"))
    assert errors(path).messages[-1] == f"{path}:line 5002: not UTF-8 text: save it as UTF-8"


def test_empty_csv_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "", "empty.csv")
    assert one_error(path).startswith(f"{path}:row 1: no header")


# --- Errors: structure -----------------------------------------------------------------------


def test_unknown_top_level_key_is_an_error_with_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "matrx: {style: [a]}\n")
    assert one_error(path) == f"{path}:5: unknown manifest key 'matrx': did you mean 'matrix'?"


def test_parameter_at_top_level_is_an_error_saying_where_parameters_go(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "Prompt: a cat\n")
    assert one_error(path) == (
        f"{path}:5: unknown manifest key 'Prompt': API parameters go under `defaults:` or on a task"
    )


def test_key_given_twice_in_one_mapping_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "tasks:\n  - Prompt: a cat\n    Prompt: a dog\n")
    assert one_error(path) == (
        f"{path}:7: 'Prompt' is given twice in one mapping (first on line 6): keep one"
    )


def test_yaml_anchors_and_merge_keys_work_and_may_be_overridden(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
        tasks:
          - &square {Prompt: a cat, OutputConfig: {AspectRatio: "1:1"}}
          - <<: *square
            Prompt: a dog
        """,
    )
    assert [(t.params["Prompt"], t.params["OutputConfig"]) for t in expand(path)] == [
        ("a cat", {"AspectRatio": "1:1"}),
        ("a dog", {"AspectRatio": "1:1"}),
    ]


@pytest.mark.parametrize(
    ("matrix", "problem"),
    [
        ("style: []", "matrix.style must be a non-empty list, e.g. [a, b]"),
        ("style: [a, a]", "matrix.style lists 'a' twice: keep one"),
        ("style: [[a]]", "matrix.style: ['a'] (list) is not a string or a number"),
        ("Style: [a]", "matrix variable 'Style' must be a lower-case name"),
        ("palette: [a]", "'palette' is both a matrix variable and a default variable"),
    ],
)
def test_matrix_mistakes_name_the_matrix_line(tmp_path: Path, matrix: str, problem: str) -> None:
    path = write(tmp_path, HEAD + f"  palette: muted\nmatrix:\n  {matrix}\n")
    assert one_error(path).startswith(f"{path}:7: {problem}")


@pytest.mark.parametrize("repeat", ["0", "-1", "1.5", "two", "true"])
def test_repeat_must_be_a_whole_number_of_at_least_one(tmp_path: Path, repeat: str) -> None:
    path = write(tmp_path, HEAD + f"repeat: {repeat}\n")
    assert one_error(path).startswith(f"{path}:5: repeat must be a whole number ≥ 1")


def test_task_that_is_not_a_mapping_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "tasks:\n  - a cat\n")
    assert one_error(path).startswith(f"{path}:6: a task is a mapping of parameters and variables")


def test_variable_that_is_an_object_hints_at_upper_case(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "tasks:\n  - {outputConfig: {AspectRatio: '1:1'}}\n")
    assert one_error(path).endswith("parameters start with an upper-case letter (OutputConfig)")


# --- Errors: parameters ----------------------------------------------------------------------


def test_unquoted_float_version_is_an_error_telling_to_quote_it(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        service: vod
        defaults:
          vod:
            SubAppId: 1
            ModelName: GEM
            ModelVersion: 2.5
        tasks:
          - {Prompt: a cat}
          - {Prompt: a dog}
        """,
    )
    # Once, at the line of the default: not once for every task that inherits it.
    assert one_error(path) == (
        f"{path}:6: defaults.vod: ModelVersion must be a string, got 2.5 (float): quote it, "
        'e.g. "2.5"'
    )


@pytest.mark.parametrize(
    ("written", "read_as"),
    [("16:9", "969 (int)"), ("1.10", "1.1 (float)"), ("yes", "True (bool)")],
)
def test_a_value_yaml_turned_into_a_number_is_quoted_as_written(
    tmp_path: Path, written: str, read_as: str
) -> None:
    path = write(
        tmp_path, HEAD + f"tasks:\n  - {{Prompt: a, OutputConfig: {{MediaName: {written}}}}}\n"
    )
    assert one_error(path) == (
        f"{path}:6: vod task: OutputConfig.MediaName must be a string, got {written}, which YAML "
        f'reads as {read_as}: quote it, e.g. "{written}"'
    )


def test_an_unquoted_aspect_ratio_in_defaults_is_quoted_as_written(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "  OutputConfig: {AspectRatio: 16:9}\ntasks:\n  - {Prompt: a}\n")
    assert one_error(path) == (
        f"{path}:5: defaults: OutputConfig.AspectRatio must be a string, got 16:9, which YAML "
        'reads as 969 (int): quote it, e.g. "16:9"'
    )


def test_wrong_type_in_a_task_names_the_task_line(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "tasks:\n  - {Prompt: a}\n  - {Prompt: b, ModelVersion: 3}\n")
    assert one_error(path) == (
        f'{path}:7: vod task: ModelVersion must be a string, got 3 (int): quote it, e.g. "3"'
    )


def test_unknown_parameter_suggests_the_closest_real_one(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "tasks:\n  - {Prompt: a, OutputConfig: {AspectRatoi: '1:1'}}\n")
    assert one_error(path) == (
        f"{path}:6: vod task: unknown parameter OutputConfig.AspectRatoi: did you mean "
        "'AspectRatio'?"
    )


def test_parameter_of_the_other_service_says_which_service_has_it(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "tasks:\n  - {Prompt: a, ExtraParameters: {LogoAdd: 1}}\n")
    assert one_error(path) == (
        f"{path}:6: vod task: ExtraParameters is an mps parameter, not a vod one: set it under "
        "defaults.mps or on mps tasks (`service: mps`)"
    )


def test_missing_required_parameter_says_where_to_put_it(tmp_path: Path) -> None:
    path = write(
        tmp_path, "service: vod\ntasks:\n  - {Prompt: a cat, ModelName: GEM, ModelVersion: '2.5'}\n"
    )
    assert one_error(path) == (
        f"{path}:3: vod task: SubAppId is required: set it under defaults.vod (or on each task)"
    )


def test_missing_required_parameter_in_a_bare_csv_asks_for_a_column(tmp_path: Path) -> None:
    path = write(tmp_path, "Prompt,ModelName,ModelVersion\na cat,GEM,2.5\n", "cats.csv")
    assert one_error(path) == (
        f"{path}:row 2: vod task: SubAppId is required: add a SubAppId column and fill it on "
        "every vod row"
    )


def test_task_without_prompt_or_images_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "tasks:\n  - {NegativePrompt: blurry}\n")
    assert one_error(path) == (
        f"{path}:6: vod task: no Prompt (and no FileInfos): give the task a Prompt, or the "
        "manifest a `prompt:` template"
    )


def test_out_of_range_and_literal_values_are_explained(tmp_path: Path) -> None:
    path = write(
        tmp_path, HEAD + "tasks:\n  - {Prompt: a, TasksPriority: 11, EnhancePrompt: enabled}\n"
    )
    assert errors(path).messages == [
        f"{path}:6: vod task: EnhancePrompt must be 'Enabled' or 'Disabled', got 'enabled' (str)",
        f"{path}:6: vod task: TasksPriority must be ≤ 10, got 11",
    ]


def test_csv_bad_cell_names_row_and_column(tmp_path: Path) -> None:
    path = write(
        tmp_path, f"Prompt,{VOD_COLUMNS},Seed\na,{VOD_CELLS},7\nb,{VOD_CELLS},seven\n", "seeds.csv"
    )
    assert one_error(path) == (
        f"{path}:row 3: vod task: column Seed: 'seven' is not a whole number: write e.g. 42"
    )


def test_csv_bad_json_cell_names_row_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, f"Prompt,{VOD_COLUMNS},FileInfos\na,{VOD_CELLS},[oops]\n", "f.csv")
    assert one_error(path).startswith(
        f"{path}:row 2: vod task: column FileInfos: is not valid JSON"
    )


def test_csv_unknown_column_is_an_error_with_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, f"Prompt,OutputConfig.AspectRatoi,{VOD_COLUMNS}\n", "cols.csv")
    assert one_error(path) == (
        f"{path}:row 1: column 2: 'OutputConfig.AspectRatoi' is not a vod or mps parameter: did "
        "you mean 'OutputConfig.AspectRatio'?"
    )


def test_csv_header_mistakes_are_reported_together(tmp_path: Path) -> None:
    path = write(
        tmp_path, "Prompt,,Prompt,#notes,OutputConfig,OutputConfig.AspectRatio\n", "cols.csv"
    )
    assert errors(path).messages == [
        f"{path}:row 1: column 2: has no name: name it (a parameter like Prompt) or delete the "
        "column",
        f"{path}:row 1: column 3: 'Prompt' is also column 1: keep one",
        f"{path}:row 1: column 4: '#notes' is neither a parameter (Upper-case, like Prompt) nor a "
        "variable (lower-case, like animal)",
        f"{path}:row 1: columns 'OutputConfig' and 'OutputConfig.AspectRatio' both set "
        "OutputConfig: keep one",
    ]


def test_csv_row_with_the_wrong_number_of_cells_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, f"Prompt,{VOD_COLUMNS}\na, cat,{VOD_CELLS}\n", "cells.csv")
    assert one_error(path) == (
        f"{path}:row 2: 5 cells but the header names 4 columns: quote cells that contain commas"
    )


def test_csv_bad_service_cell_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, f"service,Prompt,{VOD_COLUMNS}\nvdo,a,{VOD_CELLS}\n", "s.csv")
    assert one_error(path) == f"{path}:row 2: service must be vod or mps, got 'vdo'"


# --- Errors: many at once --------------------------------------------------------------------


def test_several_errors_are_reported_together_with_their_count(tmp_path: Path) -> None:
    rows = "".join(f"cat {n},{VOD_CELLS},x{n}\n" for n in range(25))
    path = write(tmp_path, f"Prompt,{VOD_COLUMNS},Seed\n" + rows, "seeds.csv")
    error = errors(path, max_errors=5)
    assert error.total == 25
    assert len(error.messages) == 5
    assert error.messages[0].startswith(f"{path}:row 2: vod task: column Seed: 'x0'")
    assert error.messages[4].startswith(f"{path}:row 6: vod task: column Seed: 'x4'")
    assert str(error).splitlines()[-1] == "... and 20 more errors"


def test_manifest_error_shows_the_first_ten_and_counts_the_rest() -> None:
    error = ManifestError([f"job.yaml:{n}: wrong" for n in range(1, 13)], total=40)
    lines = str(error).splitlines()
    assert lines[:10] == [f"job.yaml:{n}: wrong" for n in range(1, 11)]
    assert lines[10:] == ["... and 30 more errors"]
    assert str(ManifestError(["job.yaml:1: wrong"])) == "job.yaml:1: wrong"


def test_mistakes_the_matrix_does_not_change_are_reported_once_per_task(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
        matrix:
          style: [ink, oil, pencil]
        tasks:
          - {Prompt: "a cat, {style}", Promt: typo}
        """,
    )
    assert one_error(path) == (
        f"{path}:8 (style=ink): vod task: unknown parameter Promt: did you mean 'Prompt'?"
    )


# --- Errors: duplicates ----------------------------------------------------------------------


def test_two_tasks_with_the_same_request_are_an_error_naming_both(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
        tasks:
          - {Prompt: a cat}
          - {Prompt: a dog}
          - {NegativePrompt: null, Prompt: a cat}
        """,
    )
    assert one_error(path) == (
        f"{path}:8: vod task: the same request as {path}:6 (SessionId and SessionContext "
        "aside): change one, or use `repeat` for deliberate copies"
    )


def test_tasks_differing_only_in_session_id_are_the_same_request(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD + "tasks:\n  - {Prompt: a, SessionId: one}\n"
        "  - {Prompt: a, SessionId: two, SessionContext: x}\n",
    )
    assert one_error(path).startswith(f"{path}:7: vod task: the same request as {path}:6")


def test_two_tasks_on_one_line_are_still_told_apart(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "tasks: [{Prompt: a}, {Prompt: a}]\n")
    assert one_error(path).startswith(f"{path}:5: vod task: the same request as {path}:5")


def test_duplicate_csv_rows_are_found_among_many(tmp_path: Path) -> None:
    rows = [f"prompt {n},{VOD_CELLS}\n" for n in range(5_000)]
    rows.append(f"prompt 1234,{VOD_CELLS}\n")
    path = write(tmp_path, f"Prompt,{VOD_COLUMNS}\n" + "".join(rows), "many.csv")
    assert one_error(path).startswith(
        f"{path}:row 5002: vod task: the same request as {path}:row 1236"
    )


def test_the_same_own_session_id_on_two_tasks_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path, HEAD + "tasks:\n  - {Prompt: a, SessionId: s1}\n  - {Prompt: b, SessionId: s1}\n"
    )
    assert one_error(path) == (
        f"{path}:7: vod task: SessionId 's1' is also sent by {path}:6: VOD would refuse the "
        "second as a duplicate: give each its own SessionId"
    )


def test_a_repeated_task_with_its_own_session_id_is_one_error(tmp_path: Path) -> None:
    task = "  - {Prompt: a, SessionId: s1}\n"
    path = write(tmp_path, HEAD + "tasks:\n" + task + task)
    assert one_error(path).startswith(f"{path}:7: vod task: the same request as {path}:6")


def test_own_session_id_with_repeat_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "repeat: 2\ntasks:\n  - {Prompt: a, SessionId: s1}\n")
    assert one_error(path).startswith(
        f"{path}:7: vod task: SessionId is set and repeat is 2: every copy would send the same "
        "SessionId"
    )


def test_tasks_without_validate_stops_at_the_first_invalid_task(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD + "tasks:\n  - {Prompt: a}\n  - {Prompt: b, Seed: x}\n  - {Prompt: c, Seed: y}\n",
    )
    stream = load_manifest(path).tasks()
    assert next(stream).params["Prompt"] == "a"
    with pytest.raises(ManifestError) as caught:
        next(stream)
    assert caught.value.messages == [
        f"{path}:7: vod task: Seed must be an integer, got 'x' (str): write a whole number"
    ]


@pytest.mark.parametrize(
    ("written", "fix"),
    [('"42"', "write it without quotes"), ("'7'", "write it without quotes"),
     ("x", "write a whole number"), ('"x"', "write a whole number")],
)
def test_write_it_without_quotes_only_when_the_number_had_quotes(
    tmp_path: Path, written: str, fix: str
) -> None:
    path = write(tmp_path, HEAD + f"tasks:\n  - {{Prompt: a, Seed: {written}}}\n")
    value = written.strip("\"'")
    assert one_error(path) == (
        f"{path}:6: vod task: Seed must be an integer, got {value!r} (str): {fix}"
    )


# --- The examples ----------------------------------------------------------------------------


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_manifests_validate(example: str) -> None:
    manifest = load_manifest(REPO / example)
    report = manifest.validate()
    tasks = list(manifest.tasks())
    assert report.total == len(tasks) > 0
    assert {task.service for task in tasks} == {"vod", "mps"}
    assert len({task.key for task in tasks}) == len(tasks)


def test_demo_manifest_is_about_a_dozen_tasks_of_both_services() -> None:
    manifest: Manifest = load_manifest(REPO / "jobs/example.yaml")
    report = manifest.validate()
    assert 10 <= report.total <= 14
    assert min(report.tasks_per_service.values()) >= 3


def test_duplicates_are_found_the_same_when_the_pass_also_keys_the_tasks(tmp_path: Path) -> None:
    # plan and submit validate with on_task, which fingerprints requests by their keys instead.
    rows = [f"prompt {n},{VOD_CELLS}\n" for n in range(3_000)]
    rows.append(f"prompt 1234,{VOD_CELLS}\n")
    path = write(tmp_path, f"Prompt,{VOD_COLUMNS}\n" + "".join(rows), "many.csv")
    seen: list[Task] = []
    with pytest.raises(ManifestError) as caught:
        load_manifest(path).validate(on_task=seen.append)
    assert caught.value.messages == [
        f"{path}:row 3002: vod task: the same request as {path}:row 1236 (SessionId and "
        "SessionContext aside): change one, or use `repeat` for deliberate copies"
    ]
    assert len(seen) == 3_001


def test_tasks_resume_at_a_place_with_the_same_tasks_as_a_full_pass(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD + 'prompt: "{animal} {style}"\nmatrix: {style: [ink, oil]}\n'
        "tasks:\n  - {animal: cat}\n  - {animal: dog}\ncsv: rows.csv\n",
    )
    (tmp_path / "rows.csv").write_text(
        "animal\n" + "".join(f"bird {n}\n" for n in range(4)), encoding="utf-8"
    )
    manifest = load_manifest(path)
    every = list(manifest.tasks())
    assert len(every) == 12 and [t.place for t in every] == sorted(t.place for t in every)
    for task in every:
        resumed = list(manifest.tasks(start=task.place))
        assert resumed == [t for t in every if t.place >= task.place]
        assert resumed[0].place == task.place
