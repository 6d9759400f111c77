"""The schema table (`batcher.api.schema`) is the request models as data: regenerated, it is the
committed file; it accepts only what the models accept, and gives exactly what they serialise;
and `batcher plan` of a valid manifest decides every task with it, never importing pydantic."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from batcher.api import schema, schema_table
from batcher.api.models import request_model
from batcher.api.schema_gen import TABLE_PATH, table_source

REPO = Path(__file__).resolve().parent.parent


def test_the_committed_table_is_what_the_models_generate() -> None:
    # On failure: `python -m batcher.api.schema_gen`, and commit the table with the model change.
    assert TABLE_PATH.read_text(encoding="utf-8") == table_source()


def test_the_table_names_every_field_of_every_model() -> None:
    for service in ("vod", "mps"):
        assert schema.field_names(service) == tuple(request_model(service).model_fields)


# Values near every rule: right and wrong types, literals, bounds, lengths, nesting, None.
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-12, 12), st.sampled_from([2**63, -(2**63) - 1]),
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(["2.5", "10", "", "a cat"]),
    st.sampled_from(["Enabled", "Disabled", "enabled", "Temporary", "png", "File", "Url"]),
    st.sampled_from(["x" * 50, "x" * 51, "x" * 64, "x" * 65, "p" * 1000, "p" * 1001]),
    st.sampled_from(["\ud800", "ünïcødé", "GEM", "Hunyuan"]), st.text(max_size=4),
)
NAMES = sorted({name for service in ("vod", "mps") for name in schema.parameter_paths(service)}
               | {"Typo", "prompt"})


def _leaf(name: str) -> str:
    return name.rsplit(".", 1)[-1]


VALUES: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(st.dictionaries(st.sampled_from([_leaf(n) for n in NAMES]), inner, max_size=3),
                 max_size=15).filter(lambda items: len(items) in (0, 1, 2, 11, 15)),
        st.dictionaries(st.sampled_from([_leaf(n) for n in NAMES]), inner, max_size=4),
    ),
    max_leaves=6,
)


def _near(spec: Any) -> st.SearchStrategy[Any]:
    """Values at and around a field's rules (the table read only to aim: the model judges)."""
    kind = spec["type"]
    if kind == "str":
        if "choices" in spec:
            return st.sampled_from([*spec["choices"], spec["choices"][0].lower()])
        longest = spec.get("max_length", 8)
        edges = st.sampled_from(["x" * longest, "x" * (longest + 1)])
        return st.one_of(st.text(max_size=3), st.text(max_size=3), edges)
    if kind == "int":
        low, high = spec.get("ge", -3), spec.get("le", 3)
        return st.integers(low - 1, high + 1)
    if kind == "bool":
        return st.booleans()
    if kind == "list":
        longest = spec.get("max_length", 3)
        return st.one_of(st.lists(_near(spec["items"]), max_size=2),
                         st.lists(_near(spec["items"]), min_size=longest, max_size=longest + 1))
    return _model_values(spec["model"])


def _model_values(model: str) -> st.SearchStrategy[dict[str, Any]]:
    fields = dict(schema_table.MODELS[model])
    values = {name: st.one_of(*[_near(spec)] * 8, VALUES) for name, spec in fields.items()}
    if model in schema_table.REQUESTS.values():
        values["Typo"] = VALUES
    return st.sets(st.sampled_from(sorted(values)), max_size=5).flatmap(
        lambda names: st.fixed_dictionaries({name: values[name] for name in names}))


def _request(service: str) -> st.SearchStrategy[dict[str, Any]]:
    base = {"SubAppId": 251007502, "ModelName": "GEM", "ModelVersion": "2.5", "Prompt": "a cat"}
    return st.builds(
        lambda keep, params: {**{name: base[name] for name in keep}, **params},
        st.one_of(st.just(set(base)), st.sets(st.sampled_from(sorted(base)))),
        _model_values(schema.request_model_name(service)),
    )


def _by_model(service: str, params: Any) -> dict[str, Any] | ValidationError:
    try:
        request = request_model(service).__pydantic_validator__.validate_python(params,
                                                                               strict=True)
    except ValidationError as error:
        return error
    wire: dict[str, Any] = request.to_wire()
    return wire


@pytest.mark.parametrize("service", ["vod", "mps"])
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_table_accepts_only_what_the_model_accepts_and_serialises_it_alike(
    service: str, data: st.DataObject
) -> None:
    params = data.draw(_request(service))
    by_table = schema.check_request(service, params)
    by_model = _by_model(service, params)
    if by_table is not None:
        assert not isinstance(by_model, ValidationError), by_model
        # Equal, and in the same order at every depth: `plan --json` prints them as they are.
        assert json.dumps(by_table) == json.dumps(by_model)
    if schema.defaults_are_valid(service, params) and isinstance(by_model, ValidationError):
        # What `expand._check_defaults` ignores in defaults: what the tasks add.
        assert all(e["type"] == "missing" or not e["loc"] for e in by_model.errors())


@pytest.mark.parametrize("service", ["vod", "mps"])
def test_the_table_decides_the_common_request(service: str) -> None:
    common = {"Prompt": "a cat", "NegativePrompt": "blurry", "ModelName": "GEM"}
    if service == "vod":
        common |= {"SubAppId": 1, "ModelVersion": "2.5",
                   "OutputConfig": {"AspectRatio": "16:9", "StorageMode": "Temporary"},
                   "FileInfos": [{"Type": "Url", "Url": "https://example.com/a.png"}]}
    else:
        common |= {"ExtraParameters": {"AspectRatio": "1:1"}, "EnhancePrompt": True,
                   "ImageInfos": [{"ImageUrl": "https://example.com/a.png"}]}
    assert schema.check_request(service, common) == _by_model(service, common)


TEN_TASKS = """\
batch: no-pydantic
defaults:
  NegativePrompt: blurry
  vod: {SubAppId: 251007502, ModelName: GEM, ModelVersion: "2.5",
        OutputConfig: {AspectRatio: "16:9", StorageMode: Temporary}}
  mps: {ModelName: Hunyuan, ExtraParameters: {AspectRatio: "1:1"}, EnhancePrompt: true}
prompt: "a {animal} in watercolor"
matrix:
  animal: [cat, dog, fox, owl, elk]
tasks:
  - service: vod
  - {service: mps, ImageInfos: [{ImageUrl: "https://example.com/a.png"}]}
"""


def _plan_in_a_fresh_process(manifest: Path, *options: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys\n"
        "from batcher.cli.main import main\n"
        f"code = main(['plan', {str(manifest)!r}, *{list(options)!r}])\n"
        "print('pydantic imported:', 'pydantic' in sys.modules, file=sys.stderr)\n"
        "print('asyncio imported:', 'asyncio' in sys.modules, file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, cwd=REPO)


def test_plan_of_a_valid_ten_task_manifest_imports_neither_pydantic_nor_asyncio(
    tmp_path: Path,
) -> None:
    manifest = tmp_path / "ten.yaml"
    manifest.write_text(TEN_TASKS, encoding="utf-8")
    done = _plan_in_a_fresh_process(manifest)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^\s+vod\s+5\s", done.stdout, re.M), done.stdout
    assert re.search(r"^\s+mps\s+5\s", done.stdout, re.M), done.stdout
    assert "pydantic imported: False" in done.stderr
    assert "asyncio imported: False" in done.stderr  # nor the writer's event loop, nor aiohttp
    as_json = _plan_in_a_fresh_process(manifest, "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert len(as_json.stdout.splitlines()) == 10
    assert "pydantic imported: False" in as_json.stderr


def test_plan_of_a_wrong_task_asks_the_model_and_explains_it(tmp_path: Path) -> None:
    manifest = tmp_path / "wrong.yaml"
    manifest.write_text(TEN_TASKS.replace('"2.5"', "2.5"), encoding="utf-8")
    done = _plan_in_a_fresh_process(manifest)
    assert done.returncode == 2
    assert "ModelVersion must be a string, got 2.5 (float): quote it" in done.stderr
    assert "pydantic imported: True" in done.stderr


def test_a_request_only_the_model_decides_is_keyed_as_before(tmp_path: Path) -> None:
    # Beyond 64 bits the table leaves the Seed to pydantic; the task is valid all the same.
    manifest = tmp_path / "big.yaml"
    manifest.write_text(TEN_TASKS.replace("  - service: vod\n",
                                          f"  - {{service: vod, Seed: {2**70}}}\n"),
                        encoding="utf-8")
    done = _plan_in_a_fresh_process(manifest, "--json")
    assert done.returncode == 0, done.stderr
    seeds = [json.loads(line)["params"].get("Seed") for line in done.stdout.splitlines()]
    assert seeds.count(2**70) == 5
    assert "pydantic imported: True" in done.stderr
