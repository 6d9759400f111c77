"""Bounds on a YAML node tree before anything walks it: aliases, depth, recursion.

YAML aliases make a tree a graph: `b: &b [*a, *a, *a]` written nine levels deep is a few lines
that expand to a billion values (the "billion laughs"), and `a: &a [*a]` contains itself. Every
later walk over the values (duplicate keys, lines, templates, the requests) sees the expansion,
so the graph is measured here first, each node once: the number of values it expands to and its
depth. A manifest past a generous limit is refused naming the line (docs/manifests.md).
"""

from __future__ import annotations

import yaml

from batcher.exceptions import ManifestError

MAX_EXPANDED_VALUES = 4_000_000
"""Values (mappings, lists, scalars; keys count too) once every alias is expanded."""

MAX_DEPTH = 100
"""Nesting of mappings and lists; an API request nests a few levels."""


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def check_node_graph(root: yaml.Node, display: str) -> None:
    """ManifestError if `root` expands past `MAX_EXPANDED_VALUES`, nests deeper than
    `MAX_DEPTH` or contains itself. Iterative, and linear in the nodes as written."""
    sizes: dict[int, int] = {}
    heights: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, children_done = stack.pop()
        key = id(node)
        children = _children(node)
        if children_done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in children)
            heights[key] = 1 + max((heights[id(child)] for child in children), default=0)
            if sizes[key] > MAX_EXPANDED_VALUES:
                raise ManifestError([_too_many(node, display)])
            continue
        if key in sizes:
            continue
        if depth > MAX_DEPTH:
            raise ManifestError([_too_deep(node, display)])
        on_path.add(key)
        stack.append((node, depth, True))
        for child in children:
            child_key = id(child)
            if child_key in on_path:
                raise ManifestError(
                    [
                        f"{display}:{_line(child)}: an alias refers to the mapping or list "
                        "that contains it, which never ends: write the values out"
                    ]
                )
            if child_key in heights and depth + heights[child_key] > MAX_DEPTH:
                raise ManifestError([_too_deep(child, display)])
            if child_key not in sizes:
                stack.append((child, depth + 1, False))


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _too_many(node: yaml.Node, display: str) -> str:
    return (
        f"{display}:{_line(node)}: this expands to more than {MAX_EXPANDED_VALUES:,} values "
        "once its aliases (*name) are expanded: use fewer aliases, or put many tasks in a "
        "CSV file (`csv:`)"
    )


def _too_deep(node: yaml.Node, display: str) -> str:
    return (
        f"{display}:{_line(node)}: nested more than {MAX_DEPTH} levels deep (with its "
        "aliases expanded): a manifest's parameters nest a few levels"
    )
