"""The README's commands run as written (issue #30, items 14-17): the CLI lines and the
gradio_client block on the shipped examples (with tiny networks, as the Python example's test
does), the install commands (pyproject.toml: pip install -e ., its dev extra, the console
scripts), PyTorch's CPU-only install line, and chromium's apt-get update."""
from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
FAST = ["--tiny", "--irm64-steps", "1", "--irm128-steps", "1", "--tem-steps", "1"]


def block(marker: str) -> str:
    return re.search(rf"<!-- {marker} -->\s*```\w*\n(.*?)```", README, re.S).group(1)


@pytest.fixture
def in_a_fresh_folder(tmp_path, monkeypatch):
    """A folder of one's own with the examples in it, as a checkout's root has them."""
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_readme_cli_lines_run_as_written(in_a_fresh_folder, capsys):
    from diffbfr.cli import main
    lines = [ln.split("#")[0].strip() for ln in block("example:cli").splitlines() if ln.strip()]
    assert len(lines) >= 3 and all(ln.startswith("python -m diffbfr.cli ") for ln in lines)
    for line in lines:
        argv = shlex.split(line)[3:]
        assert not any(a in ("photo_or_folder", "small_photo.jpg") for a in argv)   # no placeholders
        if "--help" in argv:
            with pytest.raises(SystemExit) as exc:
                main(argv)
            assert exc.value.code == 0 and "--irm-start" in capsys.readouterr().out
            continue
        out = in_a_fresh_folder / argv[argv.index("-o") + 1]
        assert main(argv + FAST) == 0, line
        assert (out / "run.json").is_file() and list(out.glob("*_restored.png")), line


def test_readme_gradio_client_block_runs_as_written(in_a_fresh_folder, monkeypatch):
    from bench.app_process import free_port
    from diffbfr import methods
    from ui.state import AppState
    import app as app_module
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(in_a_fresh_folder / "server_tmp"))
    demo = app_module.build_demo(AppState({"diffbfr": methods.tiny("diffbfr")}, identity=False))
    demo.queue(default_concurrency_limit=1)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        code = block("example:client").replace("http://127.0.0.1:7860/", f"http://127.0.0.1:{port}/")
        namespace: dict = {}
        exec(compile(code, "README.md", "exec"), namespace)
    finally:
        demo.close()
    restored = Path(namespace["restored"])
    assert restored.is_file() and (in_a_fresh_folder / "client_out") in restored.parents   # the caller's folder
    assert namespace["record"]["scale"] == 2 and namespace["stages"]


# ---------------------------------------------------------------- install
def test_pyproject_installs_the_package_its_requirements_and_commands():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["tool"]["setuptools"]["dynamic"]["dependencies"] == {"file": ["requirements.txt"]}
    assert set(project["tool"]["setuptools"]["packages"]["find"]["include"]) >= {"diffbfr", "diffbfr.*", "ui", "ui.*"}
    assert project["tool"]["setuptools"]["py-modules"] == ["app"]
    scripts = project["project"]["scripts"]
    assert scripts == {"diffbfr-restore": "diffbfr.cli:main", "diffbfr-app": "app:main"}
    import importlib
    for target in scripts.values():
        module, fn = target.split(":")
        assert callable(getattr(importlib.import_module(module), fn))
    dev = {d.split("==")[0] for d in project["project"]["optional-dependencies"]["dev"]}
    assert {"pytest", "scipy", "scikit-image", "matplotlib", "playwright"} <= dev
    # every package data file the code reads ships with it
    data = project["tool"]["setuptools"]["package-data"]
    for f in (ROOT / "diffbfr").rglob("*"):
        if f.is_file() and f.suffix not in (".py", ".pyc") and "__pycache__" not in f.parts:
            pkg = ".".join(f.parent.relative_to(ROOT).parts)
            assert any(f.match(pat) for pat in data.get(pkg, [])), f


def test_readme_and_ci_install_with_pyproject():
    assert block("ci:app").strip() == "pip install -e . && python app.py"
    assert block("ci:test").strip() == 'pip install -e ".[dev]" && python -m pytest -q'
    assert "-e .[dev]" in (ROOT / "requirements-dev.txt").read_text()
    assert (ROOT / "requirements.txt").is_file()   # Hugging Face Spaces install from it


def test_readme_gives_pytorchs_cpu_only_install_and_ci_stays_offline():
    assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in README
    commands = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines() if not ln.lstrip().startswith("#")]
    assert not any("download.pytorch.org" in ln or "--index-url" in ln for ln in commands)   # offline here
    assert any("pip install -q torch==2.13.0" in ln for ln in commands)


def test_readme_says_apt_get_update_before_chromium():
    assert "apt-get update && apt-get install -y chromium" in README
