"""The keys-only pass (`validate(on_key=...)`, whose plain CSV rows `fastlane` keys from their
cells) gives every task exactly the key, service, SessionId and place of the whole way
(`validate(on_task=...)`), and refuses exactly the same manifests with the same messages."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batcher.exceptions import ManifestError
from batcher.manifest import TaskKey, load_manifest
from batcher.manifest.images import task_images, task_model, task_sub_app_id
from batcher.manifest.task import Problems
from batcher.manifest.validate import checked_requests


def mostly(*right: str, wrong: tuple[str, ...] = ()) -> st.SearchStrategy[str]:
    """A cell: one of the right values four times in five, else one of the wrong ones."""
    if not wrong:
        return st.sampled_from(right)
    return st.one_of(st.sampled_from(right), st.sampled_from(right), st.sampled_from(right),
                     st.sampled_from(right), st.sampled_from(wrong))


COMMON = {
    "service": mostly("", " "),
    "Prompt": st.one_of(mostly("a cat", 'ünïcødé "quoted" \\ tab\t', " ",
                               wrong=("{animal}", "{", "p" * 1001)),
                        st.text(min_size=1, max_size=8)),
    "ModelName": mostly("GEM", "Hunyuan"),
    "animal": mostly("", wrong=("cat",)),
}
CELLS = {
    "vod": COMMON | {
        "SubAppId": mostly("251007502", " 7 ", "+3", "-0", wrong=("x",)),
        "ModelVersion": mostly("2.5", "3"),
        "OutputConfig.AspectRatio": mostly("16:9", "1:1", wrong=("{animal}",)),
        "OutputConfig.StorageMode": mostly("Temporary", "Permanent", wrong=("Forever",)),
        "OutputConfig.MediaName": mostly("n", "n" * 64, wrong=("n" * 65,)),
        "OutputConfig.OutputImageCount": mostly("1", "9", wrong=("10", "0", "two")),
        "TasksPriority": mostly("-10", "10", "0", wrong=("11", "-11")),
        "EnhancePrompt": mostly("Enabled", "Disabled", wrong=("yes",)),
    },
    "mps": COMMON | {
        "EnhancePrompt": mostly("yes", "false", "1", wrong=("maybe",)),
        "ExtraParameters.AspectRatio": mostly("1:1", "4:3"),
        "ExtraParameters.LogoAdd": mostly("0", "1", wrong=("2",)),
        "OutputImageCount": mostly("1", "4", wrong=("0",)),
    },
}
"""Non-empty cells of each service's columns, right and wrong; which are empty is drawn apart."""

DEFAULTS = """\
batch: lanes
service: vod
defaults:
  vod: {SubAppId: 251007502, ModelName: GEM, ModelVersion: "2.5", OutputConfig: {LogoAdd: Enabled}}
  mps: {ModelName: Hunyuan}
csv: rows.csv
"""


def both_ways(path: Path) -> tuple[list[TaskKey] | str, list[TaskKey] | str]:
    """(keys-only pass, whole way): the tasks' keys, or the error messages. The keys-only pass
    is run with the parameters too, and must give each task exactly the whole way's."""
    results: list[list[TaskKey] | str] = []
    params: list[list[dict[str, object]]] = []
    for keys_only in (True, False):
        found: list[TaskKey] = []
        sent: list[dict[str, object]] = []
        manifest = load_manifest(path)
        try:
            if keys_only:
                manifest.validate(max_errors=100, on_key=found.append)
                manifest.validate(max_errors=100, with_params=True,
                                  on_key=lambda task, sent=sent: sent.append(
                                      json.loads(task.params_json or "null")))
            else:
                manifest.validate(max_errors=100, on_task=lambda task, found=found, sent=sent: (
                    found.append(TaskKey(task.key, task.service, task.session_id, task.place, None,
                                        task_images(task.service, task.params),
                                        task_model(task.service, task.params),
                                        task_sub_app_id(task.service, task.params))),
                    sent.append(task.params)))
        except ManifestError as error:
            results.append("\n".join(error.messages))
            continue
        results.append(found)
        params.append(sent)
    if len(params) == 2:
        assert params[0] == params[1]
    return results[0], results[1]


def write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    header = list(rows[0])
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        for row in rows:
            writer.writerow([row[name] for name in header])


@st.composite
def manifests(draw: st.DrawFn) -> tuple[str, list[dict[str, str]]]:
    """A service and rows of its columns: most rows of one shape, a few with more cells empty."""
    service = draw(st.sampled_from(["vod", "mps"]))
    rows = draw(st.lists(st.fixed_dictionaries(CELLS[service]), min_size=1, max_size=12))
    empty = draw(st.sets(st.sampled_from(sorted(CELLS[service]))))
    for row in rows:
        more = draw(st.sets(st.sampled_from(sorted(CELLS[service])), max_size=2)) if draw(
            st.integers(0, 4)) == 0 else set()
        for name in empty | more:
            row[name] = ""
    return service, rows


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drawn=manifests(), with_yaml=st.booleans())
def test_the_keys_only_pass_equals_the_whole_way(tmp_path: Path, drawn, with_yaml) -> None:
    service, rows = drawn
    write_rows(tmp_path / "rows.csv", rows)
    path = tmp_path / "rows.csv"
    if with_yaml:
        path = tmp_path / "job.yaml"
        path.write_text(DEFAULTS.replace("service: vod", f"service: {service}"), encoding="utf-8")
    elif service == "mps":
        for row in rows:
            row["service"] = "mps"
        write_rows(path, rows)
    keys_only, whole_way = both_ways(path)
    assert keys_only == whole_way


def test_plain_rows_take_the_fast_lane_and_the_rest_the_whole_way(tmp_path: Path) -> None:
    rows = [{"service": "vod", "Prompt": f"cat {n}", "SubAppId": "1", "ModelName": "GEM",
             "ModelVersion": "2.5", "animal": ""} for n in range(5)]
    rows[3]["Prompt"] = "a {animal}"  # a placeholder: the whole way
    rows[3]["animal"] = "dog"
    write_rows(tmp_path / "rows.csv", rows)
    manifest = load_manifest(tmp_path / "rows.csv")
    fast: list[TaskKey] = []
    whole = [variant.origin for variant, _ in checked_requests(
        manifest._plan, Problems(keep=10), on_fast_key=fast.append)]
    assert [task.place for task in fast] == [2, 3, 4, 6]  # CSV rows 2..6, the header is row 1
    assert whole == [f"{tmp_path / 'rows.csv'}:row 5"]
    keys_only, whole_way = both_ways(tmp_path / "rows.csv")
    assert keys_only == whole_way and len(keys_only) == 5


@pytest.mark.parametrize("blank", [",,,\n", "vod,,,\n"])
def test_a_row_of_empty_cells_is_no_task_either_way(tmp_path: Path, blank: str) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(DEFAULTS + 'prompt: "a plain prompt"\n', encoding="utf-8")
    (tmp_path / "rows.csv").write_text("service,Prompt,SubAppId,TasksPriority\nvod,a cat,,\n"
                                       + blank, encoding="utf-8")
    keys_only, whole_way = both_ways(path)
    assert keys_only == whole_way
