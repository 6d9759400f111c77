"""What a manifest's mistakes say (docs/manifests.md): one line each, naming the file and the
YAML line or CSV row, what is wrong and the fix; several at once; duplicate requests.

Manifests are written to a temporary directory; tests/helpers.py loads, validates and expands
them the way the CLI does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from batcher.exceptions import ManifestError
from batcher.manifest import load_manifest
from tests.helpers import (
    MANIFEST_HEAD,
    VOD_CELLS,
    VOD_COLUMNS,
    expand_job,
    job_errors,
    one_job_error,
    write_job,
)

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = ["jobs/example.yaml", "jobs/example.csv", "jobs/all-features.yaml"]


# --- Errors: files ---------------------------------------------------------------------------


def test_missing_manifest_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    assert one_job_error(path) == f"{path}: no such file: check the path"


def test_directory_is_not_a_manifest(tmp_path: Path) -> None:
    path = tmp_path / "dir.yaml"
    path.mkdir()
    assert one_job_error(path) == f"{path}: is a directory, not a manifest file"


def test_unknown_file_kind_is_an_error(tmp_path: Path) -> None:
    path = write_job(tmp_path, "{}", "job.json")
    assert "not a manifest: name it .yaml or .yml" in one_job_error(path)


def test_manifest_not_in_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes(MANIFEST_HEAD.encode() + "tasks:\n  - {Prompt: caf\xe9}\n".encode("latin-1"))
    assert one_job_error(path) == f"{path}:6: not UTF-8 text (byte 0xe9): save it as UTF-8"


def test_csv_not_in_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    rows = f"Prompt,{VOD_COLUMNS}\n" + "".join(f"cat {n},{VOD_CELLS}\n" for n in range(3))
    path.write_bytes(rows.encode() + f"caf\xe9,{VOD_CELLS}\n".encode("latin-1"))
    assert one_job_error(path) == f"{path}:line 5: not UTF-8 text: save it as UTF-8"


def test_csv_not_in_utf8_far_from_its_start_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    rows = f"Prompt,{VOD_COLUMNS}\n" + "".join(f"cat {n},{VOD_CELLS}\n" for n in range(5000))
    path.write_bytes(rows.encode() + f"caf\xe9,{VOD_CELLS}\n".encode("latin-1"))
    assert job_errors(path).messages[-1] == f"{path}:line 5002: not UTF-8 text: save it as UTF-8"


# --- Errors: structure -----------------------------------------------------------------------


def test_yaml_anchors_and_merge_keys_work_and_may_be_overridden(tmp_path: Path) -> None:
    path = write_job(
        tmp_path,
        MANIFEST_HEAD
        + """\
        tasks:
          - &square {Prompt: a cat, OutputConfig: {AspectRatio: "1:1"}}
          - <<: *square
            Prompt: a dog
        """,
    )
    assert [(t.params["Prompt"], t.params["OutputConfig"]) for t in expand_job(path)] == [
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
    path = write_job(tmp_path, MANIFEST_HEAD + f"  palette: muted\nmatrix:\n  {matrix}\n")
    assert one_job_error(path).startswith(f"{path}:7: {problem}")


@pytest.mark.parametrize("repeat", ["0", "-1", "1.5", "two", "true"])
def test_repeat_must_be_a_whole_number_of_at_least_one(tmp_path: Path, repeat: str) -> None:
    path = write_job(tmp_path, MANIFEST_HEAD + f"repeat: {repeat}\n")
    assert one_job_error(path).startswith(f"{path}:5: repeat must be a whole number ≥ 1")


# --- Errors: parameters ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "read_as"),
    [("16:9", "969 (int)"), ("1.10", "1.1 (float)"), ("yes", "True (bool)")],
)
def test_a_value_yaml_turned_into_a_number_is_quoted_as_written(
    tmp_path: Path, written: str, read_as: str
) -> None:
    path = write_job(
        tmp_path,
        MANIFEST_HEAD + f"tasks:\n  - {{Prompt: a, OutputConfig: {{MediaName: {written}}}}}\n",
    )
    assert one_job_error(path) == (
        f"{path}:6: vod task: OutputConfig.MediaName must be a string, got {written}, which YAML "
        f'reads as {read_as}: quote it, e.g. "{written}"'
    )


def test_out_of_range_and_literal_values_are_explained(tmp_path: Path) -> None:
    path = write_job(
        tmp_path,
        MANIFEST_HEAD + "tasks:\n  - {Prompt: a, TasksPriority: 11, EnhancePrompt: enabled}\n",
    )
    assert job_errors(path).messages == [
        f"{path}:6: vod task: EnhancePrompt must be 'Enabled' or 'Disabled', got 'enabled' (str)",
        f"{path}:6: vod task: TasksPriority must be ≤ 10, got 11",
    ]


def test_csv_header_mistakes_are_reported_together(tmp_path: Path) -> None:
    path = write_job(
        tmp_path, "Prompt,,Prompt,#notes,OutputConfig,OutputConfig.AspectRatio\n", "cols.csv"
    )
    assert job_errors(path).messages == [
        f"{path}:row 1: column 2: has no name: name it (a parameter like Prompt) or delete the "
        "column",
        f"{path}:row 1: column 3: 'Prompt' is also column 1: keep one",
        f"{path}:row 1: column 4: '#notes' is neither a parameter (Upper-case, like Prompt) nor a "
        "variable (lower-case, like animal)",
        f"{path}:row 1: columns 'OutputConfig' and 'OutputConfig.AspectRatio' both set "
        "OutputConfig: keep one",
    ]


# --- Errors: many at once --------------------------------------------------------------------


def test_several_errors_are_reported_together_with_their_count(tmp_path: Path) -> None:
    rows = "".join(f"cat {n},{VOD_CELLS},x{n}\n" for n in range(25))
    path = write_job(tmp_path, f"Prompt,{VOD_COLUMNS},Seed\n" + rows, "seeds.csv")
    error = job_errors(path, max_errors=5)
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


# --- Errors: duplicates ----------------------------------------------------------------------


def test_duplicate_csv_rows_are_found_among_many(tmp_path: Path) -> None:
    rows = [f"prompt {n},{VOD_CELLS}\n" for n in range(5_000)]
    rows.append(f"prompt 1234,{VOD_CELLS}\n")
    path = write_job(tmp_path, f"Prompt,{VOD_COLUMNS}\n" + "".join(rows), "many.csv")
    assert one_job_error(path).startswith(
        f"{path}:row 5002: vod task: the same request as {path}:row 1236"
    )


def test_a_repeated_task_with_its_own_session_id_is_one_error(tmp_path: Path) -> None:
    task = "  - {Prompt: a, SessionId: s1}\n"
    path = write_job(tmp_path, MANIFEST_HEAD + "tasks:\n" + task + task)
    assert one_job_error(path).startswith(f"{path}:7: vod task: the same request as {path}:6")


def test_tasks_without_validate_stops_at_the_first_invalid_task(tmp_path: Path) -> None:
    path = write_job(
        tmp_path,
        MANIFEST_HEAD
        + "tasks:\n  - {Prompt: a}\n  - {Prompt: b, Seed: x}\n  - {Prompt: c, Seed: y}\n",
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
    [
        ('"42"', "write it without quotes"),
        ("'7'", "write it without quotes"),
        ("x", "write a whole number"),
        ('"x"', "write a whole number"),
    ],
)
def test_write_it_without_quotes_only_when_the_number_had_quotes(
    tmp_path: Path, written: str, fix: str
) -> None:
    path = write_job(tmp_path, MANIFEST_HEAD + f"tasks:\n  - {{Prompt: a, Seed: {written}}}\n")
    value = written.strip("\"'")
    assert one_job_error(path) == (
        f"{path}:6: vod task: Seed must be an integer, got {value!r} (str): {fix}"
    )


# --- One mistake, one line: each case as its own test was ------------------------------


ONE_LINE_IS = [
    pytest.param(
        MANIFEST_HEAD + "tasks:\n  - {Prompt: a cat\n  - {Prompt: b}\n",
        "job.yaml",
        lambda path, tmp_path: (
            f"{path}:7:5: YAML syntax error: did not find expected ',' or '}}' "
            "(while parsing a flow mapping, from line 6): check indentation, colons and quoting"
        ),
        id="yaml_syntax_error_names_file_and_line",
    ),
    pytest.param(
        MANIFEST_HEAD + "csv: missing.csv\n",
        "job.yaml",
        lambda path, tmp_path: (
            f"{path}:5: csv: {tmp_path / 'missing.csv'}: no such file: check the path"
        ),
        id="missing_csv_names_the_csv_line_of_the_manifest",
    ),
    pytest.param(
        MANIFEST_HEAD + "matrx: {style: [a]}\n",
        "job.yaml",
        lambda path, tmp_path: f"{path}:5: unknown manifest key 'matrx': did you mean 'matrix'?",
        id="unknown_top_level_key_is_an_error_with_a_suggestion",
    ),
    pytest.param(
        MANIFEST_HEAD + "Prompt: a cat\n",
        "job.yaml",
        lambda path, tmp_path: (
            f"{path}:5: unknown manifest key 'Prompt': API parameters go under `defaults:` "
            "or on a task"
        ),
        id="parameter_at_top_level_is_an_error_saying_where_parameters_go",
    ),
    pytest.param(
        MANIFEST_HEAD + "tasks:\n  - Prompt: a cat\n    Prompt: a dog\n",
        "job.yaml",
        lambda path, tmp_path: (
            f"{path}:7: 'Prompt' is given twice in one mapping (first on line 6): keep one"
        ),
        id="key_given_twice_in_one_mapping_is_an_error",
    ),
    # Once, at the line of the default: not once for every task that inherits it.
    pytest.param(
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
        "job.yaml",
        lambda path, tmp_path: (
            f"{path}:6: defaults.vod: ModelVersion must be a string, got 2.5 (float): quote it, "
            'e.g. "2.5"'
        ),
        id="unquoted_float_version_is_an_error_telling_to_quote_it",
    ),
    pytest.param(
        MANIFEST_HEAD + "  OutputConfig: {AspectRatio: 16:9}\ntasks:\n  - {Prompt: a}\n",
        "job.yaml",
        lambda path, tmp_path: (
            f"{path}:5: defaults: OutputConfig.AspectRatio must be a string, got 16:9, which YAML "
            'reads as 969 (int): quote it, e.g. "16:9"'
        ),
        id="an_unquoted_aspect_ratio_in_defaults_is_quoted_as_written",
    ),
    pytest.param(
        MANIFEST_HEAD + "tasks:\n  - {Prompt: a}\n  - {Prompt: b, ModelVersion: 3}\n",
        "job.yaml",
        lambda path, tmp_path: (
            f'{path}:7: vod task: ModelVersion must be a string, got 3 (int): quote it, e.g. "3"'
        ),
        id="wrong_type_in_a_task_names_the_task_line",
    ),
    pytest.param(
        MANIFEST_HEAD + "tasks:\n  - {Prompt: a, OutputConfig: {AspectRatoi: '1:1'}}\n",
        "job.yaml",
        lambda path, tmp_path: (
            f"{path}:6: vod task: unknown parameter OutputConfig.AspectRatoi: did you mean "
            "'AspectRatio'?"
        ),
        id="unknown_parameter_suggests_the_closest_real_one",
    ),
    pytest.param(
        MANIFEST_HEAD + "tasks:\n  - {Prompt: a, ExtraParameters: {LogoAdd: 1}}\n",
        "job.yaml",
        lambda path, tmp_path: (
            f"{path}:6: vod task: ExtraParameters is an mps parameter, not a vod one: set it under "
            "defaults.mps or on mps tasks (`service: mps`)"
        ),
        id="parameter_of_the_other_service_says_which_service_has_it",
    ),
    pytest.param(
        "service: vod\ntasks:\n  - {Prompt: a cat, ModelName: GEM, ModelVersion: '2.5'}\n",
        "job.yaml",
        lambda path, tmp_path: (
            f"{path}:3: vod task: SubAppId is required: set it under defaults.vod (or on each task)"
        ),
        id="missing_required_parameter_says_where_to_put_it",
    ),
    pytest.param(
        "Prompt,ModelName,ModelVersion\na cat,GEM,2.5\n",
        "cats.csv",
        lambda path, tmp_path: (
            f"{path}:row 2: vod task: SubAppId is required: add a SubAppId column and fill it on "
            "every vod row"
        ),
        id="missing_required_parameter_in_a_bare_csv_asks_for_a_column",
    ),
    pytest.param(
        MANIFEST_HEAD + "tasks:\n  - {NegativePrompt: blurry}\n",
        "job.yaml",
        lambda path, tmp_path: (
            f"{path}:6: vod task: no Prompt (and no FileInfos): give the task a Prompt, or the "
            "manifest a `prompt:` template"
        ),
        id="task_without_prompt_or_images_is_an_error",
    ),
    pytest.param(
        f"Prompt,{VOD_COLUMNS},Seed\na,{VOD_CELLS},7\nb,{VOD_CELLS},seven\n",
        "seeds.csv",
        lambda path, tmp_path: (
            f"{path}:row 3: vod task: column Seed: 'seven' is not a whole number: write e.g. 42"
        ),
        id="csv_bad_cell_names_row_and_column",
    ),
    pytest.param(
        f"Prompt,OutputConfig.AspectRatoi,{VOD_COLUMNS}\n",
        "cols.csv",
        lambda path, tmp_path: (
            f"{path}:row 1: column 2: 'OutputConfig.AspectRatoi' is not a vod or mps "
            "parameter: did you mean 'OutputConfig.AspectRatio'?"
        ),
        id="csv_unknown_column_is_an_error_with_a_suggestion",
    ),
    pytest.param(
        f"Prompt,{VOD_COLUMNS}\na, cat,{VOD_CELLS}\n",
        "cells.csv",
        lambda path, tmp_path: (
            f"{path}:row 2: 5 cells but the header names 4 columns: quote cells that contain commas"
        ),
        id="csv_row_with_the_wrong_number_of_cells_is_an_error",
    ),
    pytest.param(
        f"service,Prompt,{VOD_COLUMNS}\nvdo,a,{VOD_CELLS}\n",
        "s.csv",
        lambda path, tmp_path: f"{path}:row 2: service must be vod or mps, got 'vdo'",
        id="csv_bad_service_cell_is_an_error",
    ),
    pytest.param(
        MANIFEST_HEAD
        + """\
                matrix:
                  style: [ink, oil, pencil]
                tasks:
                  - {Prompt: "a cat, {style}", Promt: typo}
                """,
        "job.yaml",
        lambda path, tmp_path: (
            f"{path}:8 (style=ink): vod task: unknown parameter Promt: did you mean 'Prompt'?"
        ),
        id="mistakes_the_matrix_does_not_change_are_reported_once_per_task",
    ),
    pytest.param(
        MANIFEST_HEAD
        + """\
                tasks:
                  - {Prompt: a cat}
                  - {Prompt: a dog}
                  - {NegativePrompt: null, Prompt: a cat}
                """,
        "job.yaml",
        lambda path, tmp_path: (
            f"{path}:8: vod task: the same request as {path}:6 (SessionId and SessionContext "
            "aside): change one, or use `repeat` for deliberate copies"
        ),
        id="two_tasks_with_the_same_request_are_an_error_naming_both",
    ),
    pytest.param(
        MANIFEST_HEAD + "tasks:\n  - {Prompt: a, SessionId: s1}\n  - {Prompt: b, SessionId: s1}\n",
        "job.yaml",
        lambda path, tmp_path: (
            f"{path}:7: vod task: SessionId 's1' is also sent by {path}:6: VOD would refuse the "
            "second as a duplicate: give each its own SessionId"
        ),
        id="the_same_own_session_id_on_two_tasks_is_an_error",
    ),
]
"""(manifest text, file name, the expected message from the path) per mistake."""


@pytest.mark.parametrize(("text", "name", "expected"), ONE_LINE_IS)
def test_one_mistake_is_one_message_that_is(
    tmp_path: Path, text: str, name: str, expected: Callable[[Path, Path], str]
) -> None:
    """The manifest's one message is exactly the expected text, naming file and line or row."""
    path = write_job(tmp_path, text, name)
    message = one_job_error(path)
    assert message == expected(path, tmp_path), message


ONE_LINE_STARTS_WITH = [
    pytest.param(
        "# nothing yet\n",
        "job.yaml",
        lambda path, tmp_path: f"{path}: the manifest is empty",
        id="empty_manifest_is_an_error",
    ),
    pytest.param(
        "- Prompt: a cat\n",
        "job.yaml",
        lambda path, tmp_path: f"{path}:1: a manifest is a mapping",
        id="manifest_that_is_not_a_mapping_is_an_error",
    ),
    pytest.param(
        "",
        "empty.csv",
        lambda path, tmp_path: f"{path}:row 1: no header",
        id="empty_csv_is_an_error",
    ),
    pytest.param(
        MANIFEST_HEAD + "tasks:\n  - a cat\n",
        "job.yaml",
        lambda path, tmp_path: f"{path}:6: a task is a mapping of parameters and variables",
        id="task_that_is_not_a_mapping_is_an_error",
    ),
    pytest.param(
        f"Prompt,{VOD_COLUMNS},FileInfos\na,{VOD_CELLS},[oops]\n",
        "f.csv",
        lambda path, tmp_path: f"{path}:row 2: vod task: column FileInfos: is not valid JSON",
        id="csv_bad_json_cell_names_row_and_column",
    ),
    pytest.param(
        MANIFEST_HEAD + "tasks:\n  - {Prompt: a, SessionId: one}\n"
        "  - {Prompt: a, SessionId: two, SessionContext: x}\n",
        "job.yaml",
        lambda path, tmp_path: f"{path}:7: vod task: the same request as {path}:6",
        id="tasks_differing_only_in_session_id_are_the_same_request",
    ),
    pytest.param(
        MANIFEST_HEAD + "tasks: [{Prompt: a}, {Prompt: a}]\n",
        "job.yaml",
        lambda path, tmp_path: f"{path}:5: vod task: the same request as {path}:5",
        id="two_tasks_on_one_line_are_still_told_apart",
    ),
    pytest.param(
        MANIFEST_HEAD + "repeat: 2\ntasks:\n  - {Prompt: a, SessionId: s1}\n",
        "job.yaml",
        lambda path, tmp_path: (
            f"{path}:7: vod task: SessionId is set and repeat is 2: every copy would send the same "
            "SessionId"
        ),
        id="own_session_id_with_repeat_is_an_error",
    ),
]
"""(manifest text, file name, the expected message from the path) per mistake."""


@pytest.mark.parametrize(("text", "name", "expected"), ONE_LINE_STARTS_WITH)
def test_one_mistake_is_one_message_that_starts_with(
    tmp_path: Path, text: str, name: str, expected: Callable[[Path, Path], str]
) -> None:
    """The manifest's one message starts with the expected text, naming file and line or row."""
    path = write_job(tmp_path, text, name)
    message = one_job_error(path)
    assert message.startswith(expected(path, tmp_path)), message


ONE_LINE_ENDS_WITH = [
    pytest.param(
        MANIFEST_HEAD + "tasks:\n  - {outputConfig: {AspectRatio: '1:1'}}\n",
        "job.yaml",
        lambda path, tmp_path: "parameters start with an upper-case letter (OutputConfig)",
        id="variable_that_is_an_object_hints_at_upper_case",
    ),
]
"""(manifest text, file name, the expected message from the path) per mistake."""


@pytest.mark.parametrize(("text", "name", "expected"), ONE_LINE_ENDS_WITH)
def test_one_mistake_is_one_message_that_ends_with(
    tmp_path: Path, text: str, name: str, expected: Callable[[Path, Path], str]
) -> None:
    """The manifest's one message ends with the expected text, naming file and line or row."""
    path = write_job(tmp_path, text, name)
    message = one_job_error(path)
    assert message.endswith(expected(path, tmp_path)), message
