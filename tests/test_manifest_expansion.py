"""How a YAML or CSV manifest expands into tasks (docs/manifests.md): tasks, CSV rows and the
implicit task, the matrix, repeat, defaults, the prompt template, placeholders, what a task
sends, the examples in jobs/ and resuming at a place.

Manifests are written to a temporary directory; tests/helpers.py loads, validates and expands
them the way the CLI does.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batcher.api.models import request_model
from batcher.exceptions import ManifestError
from batcher.manifest import Manifest, Task, load_manifest
from batcher.manifest.keys import session_id_for, task_key
from tests.helpers import (
    MANIFEST_HEAD,
    VOD_CELLS,
    VOD_COLUMNS,
    expand_job,
    one_job_error,
    prompts_of,
    write_job,
)

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = ["jobs/example.yaml", "jobs/example.csv", "jobs/all-features.yaml"]


# --- How tasks combine -----------------------------------------------------------------------


def test_explicit_tasks_come_first_then_csv_rows_in_file_order(tmp_path: Path) -> None:
    write_job(tmp_path, "Prompt\nrow one\nrow two\n", "more.csv")
    path = write_job(
        tmp_path,
        MANIFEST_HEAD + "tasks:\n  - {Prompt: task one}\n  - {Prompt: task two}\ncsv: more.csv\n",
    )
    assert prompts_of(expand_job(path)) == ["task one", "task two", "row one", "row two"]


def test_manifest_without_tasks_or_csv_is_one_implicit_task(tmp_path: Path) -> None:
    path = write_job(tmp_path, MANIFEST_HEAD + 'prompt: "a quiet harbour"\n')
    tasks = expand_job(path)
    assert prompts_of(tasks) == ["a quiet harbour"]
    assert tasks[0].origin == f"{path}:5"  # the `prompt:` line


def test_an_empty_tasks_list_is_no_task_and_an_error_naming_the_file(tmp_path: Path) -> None:
    path = write_job(tmp_path, MANIFEST_HEAD + 'prompt: "a quiet harbour"\ntasks: []\n')
    assert one_job_error(path) == (
        f"{path}: no task: the tasks list is empty: add a task, or drop `tasks:` for the "
        "implicit one"
    )


def test_a_header_only_csv_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = write_job(tmp_path, f"Prompt,{VOD_COLUMNS}\n", "header-only.csv")
    assert one_job_error(path) == (
        f"{path}: no task: the CSV has a header but no rows: add one row per task"
    )


def test_service_as_a_matrix_variable_sends_each_task_to_both_with_their_defaults(
    tmp_path: Path,
) -> None:
    path = write_job(
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
    tasks = expand_job(path)
    assert [(task.service, task.params["Prompt"]) for task in tasks] == [
        ("vod", "a cat"),
        ("mps", "a cat"),
        ("mps", "a dog"),
    ]
    vod_cat, mps_cat, _ = tasks
    assert vod_cat.params["SubAppId"] == 251007502 and "ExtraParameters" not in vod_cat.params
    assert mps_cat.params["ExtraParameters"] == {"AspectRatio": "1:1"}
    assert mps_cat.params["NegativePrompt"] == vod_cat.params["NegativePrompt"] == "blurry"
    assert vod_cat.key != mps_cat.key
    assert [task.service for task in load_manifest(path).tasks("mps")] == ["mps", "mps"]


def test_service_matrix_sends_csv_rows_without_a_service_to_both(tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text("Prompt,service\na cat,\na dog,mps\n", encoding="utf-8")
    path = write_job(
        tmp_path,
        "\n".join(MANIFEST_HEAD.splitlines()[1:]) + "\nmatrix: {service: [vod, mps]}\n"
        "csv: rows.csv\n",
    )
    assert [(t.service, t.params["Prompt"]) for t in expand_job(path)] == [
        ("vod", "a cat"),
        ("mps", "a cat"),
        ("mps", "a dog"),
    ]


def test_service_at_the_top_and_in_the_matrix_is_an_error(tmp_path: Path) -> None:
    path = write_job(tmp_path, MANIFEST_HEAD + "matrix: {service: [vod, mps]}\n")
    assert (
        one_job_error(path) == f"{path}:1: service is set here and is a matrix variable: keep one"
    )


def test_task_is_multiplied_only_by_matrix_variables_it_uses(tmp_path: Path) -> None:
    path = write_job(
        tmp_path,
        MANIFEST_HEAD
        + """\
        matrix:
          style: [ink, oil]
          size: [small, large]
        tasks:
          - {Prompt: "a cat, {style}"}
          - {Prompt: "a dog"}
        """,
    )
    assert prompts_of(expand_job(path)) == ["a cat, ink", "a cat, oil", "a dog"]


def test_task_using_two_matrix_variables_gets_their_product_in_matrix_order(
    tmp_path: Path,
) -> None:
    path = write_job(
        tmp_path,
        MANIFEST_HEAD
        + """\
        matrix:
          style: [ink, oil]
          size: [small, large]
        tasks:
          - {Prompt: "{size} cat, {style}"}
        """,
    )
    assert prompts_of(expand_job(path)) == [
        "small cat, ink",
        "large cat, ink",
        "small cat, oil",
        "large cat, oil",
    ]


def test_matrix_variables_used_through_defaults_and_prompt_multiply_the_task(
    tmp_path: Path,
) -> None:
    path = write_job(
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
    tasks = expand_job(path)
    assert [task.params["OutputConfig"]["AspectRatio"] for task in tasks] == ["1:1", "16:9"]
    assert prompts_of(tasks) == ["a cat", "a cat"]


def test_task_setting_a_matrix_variable_itself_is_not_multiplied_by_it(tmp_path: Path) -> None:
    path = write_job(
        tmp_path,
        MANIFEST_HEAD
        + """\
        prompt: "a cat, {style}"
        matrix:
          style: [ink, oil]
        tasks:
          - {style: pencil}
        """,
    )
    assert prompts_of(expand_job(path)) == ["a cat, pencil"]


def test_matrix_origin_names_the_task_line_and_the_values(tmp_path: Path) -> None:
    path = write_job(
        tmp_path,
        MANIFEST_HEAD
        + """\
        matrix:
          style: [ink]
        tasks:
          - {Prompt: "a cat, {style}"}
        """,
    )
    assert [task.origin for task in expand_job(path)] == [f"{path}:8 (style=ink)"]


def test_repeat_copies_every_task_with_its_own_key_and_session_id(tmp_path: Path) -> None:
    path = write_job(tmp_path, MANIFEST_HEAD + "repeat: 3\ntasks:\n  - {Prompt: a cat}\n")
    tasks = expand_job(path)
    assert [task.copy for task in tasks] == [0, 1, 2]
    assert len({task.key for task in tasks}) == 3
    assert len({task.session_id for task in tasks}) == 3
    assert {json.dumps({**t.params, "SessionId": None}) for t in tasks} == {
        json.dumps({**tasks[0].params, "SessionId": None})
    }


def test_validation_report_counts_tasks_per_service_with_copies(tmp_path: Path) -> None:
    path = write_job(
        tmp_path,
        MANIFEST_HEAD + "repeat: 2\ntasks:\n  - {Prompt: a}\n  - {Prompt: b}\n"
        "  - {Prompt: c, service: mps}\n",
    )
    report = load_manifest(path).validate()
    assert (report.batch, report.tasks_per_service) == ("job", {"vod": 4, "mps": 2})
    # The spend per model counts the copies too (docs/spend.md).
    assert {key: (s.tasks, s.images) for key, s in report.spend.items()} == {
        ("vod", "GEM 2.5", 251007502): (4, 4),
        ("mps", "Hunyuan", None): (2, 2),
    }
    assert report.total == 6


def test_batch_defaults_to_the_manifest_file_stem(tmp_path: Path) -> None:
    path = write_job(tmp_path, MANIFEST_HEAD + "tasks:\n  - {Prompt: a cat}\n", "spring-cats.yaml")
    manifest = load_manifest(path)
    assert manifest.batch == "spring-cats"
    assert manifest.path == path
    task = expand_job(path)[0]
    assert task.key == task_key("spring-cats", "vod", task.params, 0)


def test_batch_is_part_of_every_key(tmp_path: Path) -> None:
    body = "tasks:\n  - {Prompt: a cat}\n"
    first = expand_job(write_job(tmp_path, MANIFEST_HEAD + "batch: one\n" + body))[0]
    second = expand_job(write_job(tmp_path, MANIFEST_HEAD + "batch: two\n" + body))[0]
    assert first.params.keys() == second.params.keys()
    assert first.key != second.key


def test_task_service_overrides_the_manifest_service(tmp_path: Path) -> None:
    path = write_job(
        tmp_path, MANIFEST_HEAD + "tasks:\n  - {Prompt: a}\n  - {Prompt: b, service: mps}\n"
    )
    assert [task.service for task in expand_job(path)] == ["vod", "mps"]


def test_service_must_be_vod_or_mps(tmp_path: Path) -> None:
    path = write_job(tmp_path, MANIFEST_HEAD + "tasks:\n  - {Prompt: a, service: VOD}\n")
    assert one_job_error(path) == f"{path}:6: service must be vod or mps, got 'VOD' (str)"


def test_yaml_task_without_any_service_is_an_error_naming_it(tmp_path: Path) -> None:
    path = write_job(tmp_path, "tasks:\n  - {Prompt: a, ModelName: Hunyuan}\n")
    message = one_job_error(path)
    assert message.startswith(f"{path}:2: no service: add `service: vod` (or mps)")


def test_bare_csv_without_service_column_sends_vod_tasks(tmp_path: Path) -> None:
    path = write_job(tmp_path, f"Prompt,{VOD_COLUMNS}\na cat,{VOD_CELLS}\n", "cats.csv")
    tasks = expand_job(path)
    assert [task.service for task in tasks] == ["vod"]
    assert load_manifest(path).batch == "cats"


# --- Defaults and the prompt template ----------------------------------------------------------


def test_defaults_merge_deeply_service_section_over_common_and_task_over_both(
    tmp_path: Path,
) -> None:
    path = write_job(
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
    params = expand_job(path)[0].params
    assert params["NegativePrompt"] == "vod-section"
    assert params["OutputConfig"] == {
        "StorageMode": "Temporary",
        "AspectRatio": "16:9",
        "OutputFormat": "png",
        "Resolution": "4K",
    }


def test_lists_replace_the_default_list_whole(tmp_path: Path) -> None:
    path = write_job(
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
    first, second = expand_job(path)
    assert first.params["FileInfos"] == [{"Type": "File", "FileId": "528"}]
    assert len(second.params["FileInfos"]) == 2


def test_null_in_a_task_drops_the_default(tmp_path: Path) -> None:
    path = write_job(
        tmp_path,
        MANIFEST_HEAD.replace("mps:", "NegativePrompt: blurry\n  mps:")
        + "tasks:\n  - {Prompt: a cat, NegativePrompt: null}\n  - {Prompt: a dog}\n",
    )
    first, second = expand_job(path)
    assert "NegativePrompt" not in first.params
    assert second.params["NegativePrompt"] == "blurry"


def test_service_section_applies_only_to_its_service(tmp_path: Path) -> None:
    path = write_job(
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
    mps_task, vod_task = expand_job(path)
    assert mps_task.params == {
        "ModelName": "Hunyuan",
        "Prompt": "a cat",
        "ExtraParameters": {"AspectRatio": "1:1"},
    }
    assert "ExtraParameters" not in vod_task.params
    assert vod_task.params["ModelName"] == "GEM"


def test_prompt_template_fills_prompt_unless_the_task_gives_prompt(tmp_path: Path) -> None:
    path = write_job(
        tmp_path,
        MANIFEST_HEAD
        + """\
        prompt: "a {animal} at dawn"
        tasks:
          - {animal: heron}
          - {Prompt: a red car}
        """,
    )
    assert prompts_of(expand_job(path)) == ["a heron at dawn", "a red car"]


def test_prompt_template_and_a_default_prompt_together_are_an_error(tmp_path: Path) -> None:
    path = write_job(
        tmp_path,
        """\
        service: vod
        defaults:
          Prompt: a dog
        prompt: a cat
        """,
    )
    assert one_job_error(path) == (f"{path}:4: both `prompt` and a Prompt under defaults: keep one")


def test_lower_case_defaults_are_default_variables(tmp_path: Path) -> None:
    path = write_job(
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
    assert prompts_of(expand_job(path)) == [
        "a cat, bright colours",
        "a cat, muted colours",
        "a cat, pastel colours",
    ]


# --- Placeholders ------------------------------------------------------------------------------


def test_placeholders_are_filled_in_any_string_nested_ones_too(tmp_path: Path) -> None:
    path = write_job(
        tmp_path,
        MANIFEST_HEAD
        + """\
        tasks:
          - animal: owl
            Prompt: "an {animal}"
            OutputConfig: {MediaName: "{animal}-1"}
            FileInfos: [{Type: Url, Url: "https://example.com/{animal}.jpg"}]
        """,
    )
    params = expand_job(path)[0].params
    assert params["Prompt"] == "an owl"
    assert params["OutputConfig"] == {"MediaName": "owl-1"}
    assert params["FileInfos"] == [{"Type": "Url", "Url": "https://example.com/owl.jpg"}]


def test_double_braces_are_literal_braces(tmp_path: Path) -> None:
    path = write_job(
        tmp_path,
        MANIFEST_HEAD
        + """\
        tasks:
          - {animal: cat, Prompt: "a {animal} saying {{hello}}", ExtInfo: '{{"k": 1}}'}
        """,
    )
    params = expand_job(path)[0].params
    assert params["Prompt"] == "a cat saying {hello}"
    assert params["ExtInfo"] == '{"k": 1}'


def test_unknown_placeholder_is_an_error_naming_it_and_the_task_line(tmp_path: Path) -> None:
    path = write_job(
        tmp_path,
        MANIFEST_HEAD
        + """\
        prompt: "a {animal}"
        tasks:
          - {animl: cat}
        """,
    )
    assert one_job_error(path) == (
        f"{path}:7: vod task: unknown placeholder {{animal}} in Prompt (from prompt, line 5): "
        "set animal on the task, under defaults or in matrix (the task has 'animl': a typo?)"
    )


def test_malformed_braces_are_an_error_saying_how_to_write_a_brace(tmp_path: Path) -> None:
    path = write_job(tmp_path, MANIFEST_HEAD + "tasks:\n  - {Prompt: 'a {cat'}\n")
    assert one_job_error(path) == (
        f"{path}:6: Prompt: unmatched '{{': write '{{{{' for a literal brace"
    )


def test_templated_integer_parameter_takes_the_parameter_type(tmp_path: Path) -> None:
    path = write_job(
        tmp_path,
        MANIFEST_HEAD
        + """\
        matrix:
          seed: [1, 2]
        tasks:
          - {Prompt: a cat, Seed: "{seed}"}
        """,
    )
    assert [task.params["Seed"] for task in expand_job(path)] == [1, 2]


def test_lower_case_variable_named_like_a_parameter_is_an_error_if_unused(tmp_path: Path) -> None:
    path = write_job(tmp_path, MANIFEST_HEAD + "tasks:\n  - {prompt: a cat}\n")
    assert one_job_error(path) == (
        f"{path}:6: vod task: 'prompt' is a template variable that no placeholder uses: "
        "for the parameter write 'Prompt' (upper-case)"
    )


# --- Task contents ---------------------------------------------------------------------------


def test_vod_task_sends_a_session_id_derived_from_its_key(tmp_path: Path) -> None:
    task = expand_job(write_job(tmp_path, MANIFEST_HEAD + "tasks:\n  - {Prompt: a cat}\n"))[0]
    assert task.session_id == session_id_for(task.key)
    assert task.params["SessionId"] == task.session_id


def test_vod_task_with_its_own_session_id_keeps_it_and_its_key_ignores_it(
    tmp_path: Path,
) -> None:
    path = write_job(tmp_path, MANIFEST_HEAD + "tasks:\n  - {Prompt: a cat, SessionId: mine-1}\n")
    task = expand_job(path)[0]
    assert task.session_id == task.params["SessionId"] == "mine-1"
    plain = expand_job(write_job(tmp_path, MANIFEST_HEAD + "tasks:\n  - {Prompt: a cat}\n"))[0]
    assert task.key == plain.key


def test_mps_task_has_no_session_id(tmp_path: Path) -> None:
    task = expand_job(
        write_job(tmp_path, MANIFEST_HEAD + "tasks:\n  - {Prompt: a cat, service: mps}\n")
    )[0]
    assert task.session_id is None
    assert "SessionId" not in task.params


def test_task_params_are_the_validated_models_wire_form(tmp_path: Path) -> None:
    for task in expand_job(REPO / "jobs/all-features.yaml"):
        model = request_model(task.service).model_validate(task.params, strict=True)
        assert model.to_wire() == task.params
        assert task.key == task_key("all-features-demo", task.service, task.params, task.copy)


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
    path = write_job(tmp_path, f"Prompt,{VOD_COLUMNS}\n" + "".join(rows), "many.csv")
    seen: list[Task] = []
    with pytest.raises(ManifestError) as caught:
        load_manifest(path).validate(on_task=seen.append)
    assert caught.value.messages == [
        f"{path}:row 3002: vod task: the same request as {path}:row 1236 (SessionId and "
        "SessionContext aside): change one, or use `repeat` for deliberate copies"
    ]
    assert len(seen) == 3_001


def test_tasks_resume_at_a_place_with_the_same_tasks_as_a_full_pass(tmp_path: Path) -> None:
    path = write_job(
        tmp_path,
        MANIFEST_HEAD + 'prompt: "{animal} {style}"\nmatrix: {style: [ink, oil]}\n'
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
