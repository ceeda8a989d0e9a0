"""Dependencies point one way (DESIGN.md): a module imports only from its own or lower layers."""

import ast
from pathlib import Path

import livingdrug

SRC = Path(livingdrug.__file__).parent

LAYERS = {
    "units": 0, "params": 0, "rng": 0,
    "network": 1, "sbml": 1,
    "models": 2,
    "engines": 3,
    "clinical": 4, "trials": 4, "logistics": 4, "fit": 4,
    "scenarios": 5,
    "io": 6, "report": 6, "api": 6, "ensemble": 6, "comparison": 6, "trial": 6, "calibrate": 6, "escalation": 6,
    "cli": 7, "web": 7, "__main__": 7,
}


def _top(module_file: Path) -> str:
    rel = module_file.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    pkg_parts = list(path.relative_to(SRC).parent.parts)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg_parts[: len(pkg_parts) - (node.level - 1)] if node.level > 1 else pkg_parts
                parts = base + (node.module.split(".") if node.module else [])
                if not parts and node.names:
                    parts = [node.names[0].name]
                yield parts[0] if parts else ""
            elif node.module and node.module.startswith("livingdrug."):
                yield node.module.split(".")[1]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("livingdrug."):
                    yield a.name.split(".")[1]


def test_every_module_is_assigned_a_layer():
    tops = {_top(p) for p in SRC.rglob("*.py") if p.name != "__init__.py" or p.parent != SRC}
    assert tops <= set(LAYERS), f"assign a layer to: {sorted(tops - set(LAYERS))}"


def test_imports_point_down_the_layers():
    bad = []
    for path in SRC.rglob("*.py"):
        if path.parent == SRC and path.name == "__init__.py":
            continue  # the flat public API re-exports everything lazily
        src_layer = LAYERS[_top(path)]
        for target in _imports(path):
            if target in LAYERS and LAYERS[target] > src_layer:
                bad.append(f"{path.relative_to(SRC)} imports {target}")
    assert not bad, "upward imports: " + "; ".join(bad)
