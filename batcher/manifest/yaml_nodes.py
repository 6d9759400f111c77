"""Reading a YAML file with positions: the text, the node tree beside its value, the line of every
entry and the source text of every scalar YAML did not keep as a string (`16:9` became 969).

Syntax errors, keys written twice and undecodable bytes become a ManifestError naming the line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from batcher.exceptions import ManifestError
from batcher.manifest.files import read_yaml_bytes
from batcher.manifest.task import Loc
from batcher.manifest.yaml_bounds import check_node_graph

try:  # libyaml's parser is several times faster; the pure-Python one behaves the same.
    from yaml import CSafeLoader as _YamlLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _YamlLoader  # type: ignore[assignment]


def read_text(path: Path, display: str) -> str:
    """A whole text file, or a ManifestError that says why it cannot be read."""
    data = read_yaml_bytes(path, display)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ManifestError(
            [f"{display}:{line}: not UTF-8 text (byte {data[error.start]:#04x}): save it as UTF-8"]
        ) from None
    nul = text.find("\x00")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise ManifestError(
            [f"{display}:{line}: a NUL character (byte 0x00): remove it, or save the file as UTF-8"]
        )
    return text


def compose_yaml(text: str, display: str) -> tuple[yaml.Node | None, Any]:
    """The YAML node tree (for line numbers) and its Python value; syntax errors with a line."""
    loader = _YamlLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        check_node_graph(node, display)  # before any walk: aliases may expand without bound
        # Before construction: merge keys (`<<`) are flattened into the node tree there.
        duplicates = list(_duplicate_keys(node, display))
        if duplicates:
            raise ManifestError(duplicates)
        return node, loader.construct_document(node)
    except yaml.MarkedYAMLError as error:
        raise ManifestError([_yaml_syntax_message(error, display)]) from None
    except yaml.reader.ReaderError as error:  # a character YAML does not allow: no mark
        line = text.count("\n", 0, max(error.position, 0)) + 1
        character = chr(error.character) if isinstance(error.character, int) else "?"
        raise ManifestError(
            [
                f"{display}:{line}: character {character!r} is not allowed in YAML: "
                "remove it (write a control character as an escape in double quotes, \"\\t\")"
            ]
        ) from None
    except yaml.YAMLError as error:
        raise ManifestError([f"{display}: not valid YAML: {error}"]) from None
    finally:
        loader.dispose()


def _yaml_syntax_message(error: yaml.MarkedYAMLError, display: str) -> str:
    """`file:line:column: YAML syntax error: problem (context, from line n): how to fix`."""
    mark = error.problem_mark or error.context_mark
    where = f"{display}:{mark.line + 1}:{mark.column + 1}" if mark else display
    problem = error.problem or "not valid YAML"
    if error.context:
        start = error.context_mark
        since = (
            f", from line {start.line + 1}" if start and mark and start.line != mark.line else ""
        )
        problem += f" ({error.context}{since})"
    return f"{where}: YAML syntax error: {problem}: check indentation, colons and quoting"


def _duplicate_keys(node: yaml.Node, display: str) -> Iterator[str]:
    """A message for every key written twice in one mapping: YAML would silently keep the last."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                line = key_node.start_mark.line + 1
                if key_node.value in seen:
                    yield (
                        f"{display}:{line}: {key_node.value!r} is given twice in one mapping "
                        f"(first on line {seen[key_node.value]}): keep one"
                    )
                seen.setdefault(key_node.value, line)
            yield from _duplicate_keys(value_node, display)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _duplicate_keys(item, display)


def node_entries(node: yaml.Node | None) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    """A mapping node's entries by (string) key: key node and value node."""
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(key.value): (key, value) for key, value in node.value}


def line_of(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def record_lines(node: yaml.Node, prefix: Loc, lines: dict[Loc, int]) -> None:
    """The line of every entry under `node`, by path, so a default's error names its own line."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            loc = (*prefix, str(key_node.value))
            lines[loc] = line_of(key_node)
            record_lines(value_node, loc, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*prefix, index)] = line_of(item)
            record_lines(item, (*prefix, index), lines)


_YAML_TEXT_TAGS = frozenset({"tag:yaml.org,2002:str", "tag:yaml.org,2002:null"})
_QUOTES = ('"', "'")


def record_written(node: yaml.Node, prefix: Loc, written: dict[Loc, str]) -> None:
    """The source text of every scalar YAML did not keep as text (numbers, booleans, dates), and
    of every quoted string, with its quotes.

    A message about `AspectRatio: 16:9` must quote `16:9`, not the 969 that YAML 1.1 made of it;
    "write it without quotes" is only for a value that had quotes (`Seed: "42"`).
    """
    if isinstance(node, yaml.ScalarNode):
        if node.tag not in _YAML_TEXT_TAGS:
            written[prefix] = str(node.value)
        elif node.style in _QUOTES:
            written[prefix] = f"{node.style}{node.value}{node.style}"
    elif isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            record_written(value_node, (*prefix, str(key_node.value)), written)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            record_written(item, (*prefix, index), written)
