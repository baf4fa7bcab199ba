"""Tests write only under pytest's temporary folders (conftest.temp_inside_pytest): the
system's temp folder, as this process and the processes it starts see it, is one of pytest's."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path


def inside(path, base: Path) -> bool:
    return Path(path).resolve().is_relative_to(base.resolve())


def test_this_process_writes_its_temporary_files_into_pytests_folder(tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    assert inside(tempfile.gettempdir(), base)
    with tempfile.NamedTemporaryFile() as f:   # what gradio_client's download staging does
        assert inside(f.name, base)
    from bench import load
    assert inside(load.photo_dir(), base)     # bench.load's photos and variants


def test_processes_started_by_tests_do_too(tmp_path_factory):
    """app.py servers, Chromium and the CLI find their temp folders through these variables."""
    base = tmp_path_factory.getbasetemp()
    code = "import os, tempfile; print(tempfile.gettempdir()); print(os.environ['GRADIO_TEMP_DIR'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ)).stdout.split()
    assert len(out) == 2 and all(inside(p, base) for p in out), out
