"""The app's files on disk (ui/files.py): the results folder bounded by size, walked only past
its bound; API uploads deleted after a grace period."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from tests.app_calls import FACE, uploaded_path
from ui import files as ui_files
from ui.files import AppFiles


def folder_bytes(files: AppFiles) -> int:
    return sum(f.stat().st_size for f in files.outdir.rglob("*") if f.is_file())


def test_results_folder_is_bounded_by_size(tmp_path):
    files = AppFiles([], max_bytes=200_000)
    img = np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)  # ~120 kB as PNG
    paths = [files.write(f"p{i}.png", img) for i in range(4)]
    for k, p in enumerate(paths):  # age them so the oldest may go
        os.utime(p, (1000 + k, 1000 + k))
    files.write("new.png", img)
    assert folder_bytes(files) <= 200_000 + 130_000   # the newest file always stays
    assert not Path(paths[0]).exists() and Path(paths[-1]).parent.exists()


def test_results_folder_is_walked_only_past_its_bound(tmp_path, monkeypatch):
    """A slider move writes a file per face and stage: under the bound no write walks the
    folder; past it one walk deletes the oldest files."""
    files = AppFiles([], max_bytes=200_000)
    img = np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)  # ~120 kB as PNG
    walks = []
    rglob = Path.rglob
    monkeypatch.setattr(Path, "rglob", lambda self, pattern: walks.append(pattern) or rglob(self, pattern))
    first = files.write("a.png", img)
    assert walks == [] and files.bytes_estimate == Path(first).stat().st_size
    os.utime(first, (1000, 1000))
    files.write("b.png", img)   # over the bound: one walk, the old file and its folder go
    assert walks == ["*.png"] and not Path(first).exists()
    assert files.bytes_estimate == folder_bytes(files) <= 200_000


def test_api_uploads_are_deleted_after_a_grace_period(tmp_path, monkeypatch):
    """Identical API uploads share one file while queued: the first request must not delete it."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    files = AppFiles([])
    shared = uploaded_path("same.png")
    shared.write_bytes(np.asarray(Image.open(FACE)).tobytes()[:10] + b"x")   # any upload bytes
    files.discard_upload(str(shared), grace=True)
    assert shared.exists() and shared.resolve() in files.pending
    os.utime(shared, (0, 0))                                  # older than the grace period
    files.prune()
    assert not shared.exists() and not files.pending
    assert ui_files.API_UPLOAD_GRACE_S >= 60
