"""Layers point one way: every import inside src/tunewright (deferred ones too) goes from a higher layer
to a lower one, never sideways between parts on one line, never up.

The order is written once, in docs/architecture.md (the block after `<!-- layers -->`); this test
reads it from there. Each line is one layer, top first; its parts are separated by commas, and what
follows two spaces is a comment.
"""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "src" / "tunewright"



def layer_order() -> list[list[str]]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = re.search(r"<!-- layers -->\s*```[a-z]*\n(.*?)```", text, re.S)
    assert block, "docs/architecture.md has no ```-block after <!-- layers -->"
    layers = []
    for line in block.group(1).splitlines():
        names = re.split(r"\s{2,}", line.strip())[0]
        if names:
            layers.append([n.strip() for n in names.split(",")])
    return layers


def part_of(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 or rel.name != "__init__.py" else "__init__"


def _is_part(name: str) -> bool:
    return (PKG / name).is_dir() or (PKG / f"{name}.py").is_file()


def imports() -> list[tuple[str, str, str]]:
    """(from part, to part, file:line) for every import of one part of the package by another."""
    out = []
    for f in sorted(PKG.rglob("*.py")):
        src, here = part_of(f), f.relative_to(PKG).parent.parts
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"), str(f))):
            targets = []
            if isinstance(node, ast.ImportFrom):
                if node.level:                       # relative: climb `level - 1` folders from here
                    base = list(here[:len(here) - (node.level - 1)]) if node.level - 1 <= len(here) else []
                    mod = base + (node.module.split(".") if node.module else [])
                    targets = [mod[0]] if mod else [a.name for a in node.names]
                elif node.module and node.module.split(".")[0] == "tunewright":
                    parts = node.module.split(".")[1:]
                    targets = [parts[0]] if parts else [a.name if _is_part(a.name) else "__init__" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name.split(".")[1] if "." in a.name else "__init__"
                           for a in node.names if a.name.split(".")[0] == "tunewright"]
            for t in targets:
                if t != src:
                    out.append((src, t, f"{f.relative_to(PKG)}:{node.lineno}"))
    return out


def test_every_part_has_a_layer():
    listed = [p for layer in layer_order() for p in layer]
    assert len(listed) == len(set(listed)), "a part is listed twice in docs/architecture.md"
    parts = {part_of(f) for f in PKG.rglob("*.py")}
    assert parts - set(listed) == set(), "place these parts in the layer order in docs/architecture.md"
    assert set(listed) - parts == set(), "docs/architecture.md lists parts that do not exist"


def test_imports_point_down():
    rank = {p: i for i, layer in enumerate(layer_order()) for p in layer}   # 0 is the top
    bad = [f"{where}: {a} -> {b}" + (" (same layer)" if rank[a] == rank[b] else " (upward)")
           for a, b, where in imports() if rank[a] >= rank[b]]
    assert not bad, "imports against the layer order (docs/architecture.md):\n" + "\n".join(bad)
