"""The app's files on disk: what it writes for the browser (result PNGs with meaningful
names), what it deletes (uploads once decoded and used), and the bound on both.

Uploads: the session keeps the decoded pixels, so an upload's file is deleted once a result
exists (not at load time: the browser may still be fetching it for its preview). Examples
are never deleted: Gradio hands the same cached copy out again on the next click.
Results: PNG files in a folder of ours inside Gradio's cache folder, so Gradio serves them
as they are instead of copying each one into its cache (a second write of ~11 MB per slider
move on an 8 MP photo); pruned oldest first so that the folder stays under MAX_BYTES (disk is
bounded by size, not only by Gradio's age-based clean-up), and deleted at exit.
"""
from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from gradio.utils import get_upload_folder

from diffbfr import methods
from diffbfr.image_out import save_png
from diffbfr.photo import PhotoResult

MAX_BYTES = 256 * 2**20   # the results folder's bound (an 8 MP result PNG is ~11 MB)
API_UPLOAD_GRACE_S = 120.0  # API uploads of identical bytes share one file while queued: delete later
KEEP_NEWEST_S = 60.0      # never prune a file younger than this: Gradio may still be copying it
# A result file older than this is deleted even under MAX_BYTES: the page's promise (page.LICENCE)
# is that what it showed stays only while it may still be clicked. Gradio's own cache (the
# stage gallery's images) is cleared on the same clock (page.build_demo: delete_cache).
RESULT_TTL_S = 1800.0


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def is_aligned_example(path: str | None) -> bool:
    """Examples named *_aligned.* are aligned face crops: picking one ticks "Input is an
    aligned face" (Gradio's copy of an example keeps its file name)."""
    return bool(path) and Path(path).stem.endswith("_aligned")


def _safe_stem(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._")
    return keep[:80] or "photo"


class AppFiles:
    def __init__(self, example_paths: list[str], max_bytes: int = MAX_BYTES):
        self.example_hashes = {_sha256(Path(p)) for p in example_paths}
        self.example_sizes = {Path(p).stat().st_size for p in example_paths}
        cache = Path(get_upload_folder())
        cache.mkdir(parents=True, exist_ok=True)
        self.outdir = Path(tempfile.mkdtemp(prefix="diffbfr_results_", dir=cache))
        self.max_bytes = max_bytes
        # the folder's size as last counted plus what was written since: prune() walks the
        # folder only once this passes max_bytes, not on every file of every slider move
        self.bytes_estimate = 0
        self.pending: set[Path] = set()   # API uploads to delete once the grace period is over
        self.last_ttl_walk = time.time()  # when prune() last looked for result files past RESULT_TTL_S
        atexit.register(shutil.rmtree, self.outdir, True)

    def write(self, filename: str, image: np.ndarray) -> str:
        """A fresh file named `filename` (in its own sub-folder, so names may repeat)."""
        path = self.outdir / uuid.uuid4().hex[:12] / _safe_stem(filename)
        self.bytes_estimate += save_png(path, image, compress_level=1).stat().st_size
        self.prune()
        return str(path)

    def result_pair(self, up, result: PhotoResult) -> tuple[str, str]:
        """(before, after) PNG paths for the slider; `after` is also the download, named
        <original name>_restored.png. The before image (at the output's size, so the two
        align) is written once per photo and scale: handing Gradio arrays would re-encode it
        at slow compression on every slider move."""
        before = self.outdir / "before" / f"{up.key[:16]}_x{result.scale}.png"
        if before.exists():
            os.utime(before)  # still in use: keep prune() away from it
        else:
            self.bytes_estimate += save_png(before, result.before_at_scale(), compress_level=1).stat().st_size
        return str(before), self.write(f"{up.name}_restored.png", result.image)

    def write_faces(self, name: str, results: list[PhotoResult]) -> list[str]:
        """Per face: the restored 128 px face and its stage strip, named after the upload `name`
        (and the method, when several ran)."""
        out = []
        for r in results:
            tag = "" if len(results) == 1 else f"_{r.method}"
            method = methods.get(r.method)
            for f in r.faces:
                base = f"{name}_face{f.index + 1}{tag}"
                out.append(self.write(f"{base}_restored.png", f.stages.result))
                out.append(self.write(f"{base}_stages.png", f.stage_strip(method)))
        return out

    def delete(self, paths) -> None:
        """Delete result files the page no longer shows (a tab's previous result, replaced by a
        rerun); the before image is shared by every tab showing that photo and ages out instead."""
        for p in paths or ():
            path = Path(p)
            if self.outdir in path.parents and path.parent.name != "before":
                path.unlink(missing_ok=True)
                try:
                    path.parent.rmdir()   # write() gives each file its own folder
                except OSError:
                    pass

    def prune(self) -> None:
        """Delete the oldest result files until the folder is under max_bytes, the result files
        older than RESULT_TTL_S, and the API uploads whose grace period is over."""
        now = time.time()
        if now - self.last_ttl_walk > 60:   # a walk of the folder at most once a minute
            self.last_ttl_walk = now
            for f in self.outdir.rglob("*.png"):
                try:
                    if now - f.stat().st_mtime > RESULT_TTL_S:
                        f.unlink(missing_ok=True)
                except OSError:
                    continue
        for p in list(self.pending):
            try:
                if now - p.stat().st_mtime > API_UPLOAD_GRACE_S:
                    self._delete_upload(p)
                    self.pending.discard(p)
            except OSError:
                self.pending.discard(p)
        if self.bytes_estimate <= self.max_bytes:
            return
        files = []
        for f in self.outdir.rglob("*.png"):
            try:
                st = f.stat()
            except OSError:
                continue
            files.append((st.st_mtime, st.st_size, f))
        total = sum(size for _, size, _ in files)
        self.bytes_estimate = total
        if total <= self.max_bytes:
            return
        newest = max(m for m, _, _ in files)
        for mtime, size, f in sorted(files):
            if total <= self.max_bytes or newest - mtime < KEEP_NEWEST_S:
                break
            f.unlink(missing_ok=True)
            total -= size
        self.bytes_estimate = total

    def discard_upload(self, path: str | None, grace: bool = False) -> None:
        """Delete an upload's file (and its folder) once it is no longer needed. grace: the
        API's uploads are stored by content hash, so concurrent requests with identical bytes
        share one file; delete it only after API_UPLOAD_GRACE_S (prune() does)."""
        if not path or not os.path.isfile(path):
            return
        upload_dir = Path(get_upload_folder()).resolve()
        p = Path(path).resolve()
        if upload_dir not in p.parents or self._is_example(p):
            return  # not an upload (a local file, or an example Gradio will hand out again)
        if grace:
            self.pending.add(p)
            return
        self._delete_upload(p)

    def _is_example(self, p: Path) -> bool:
        """Gradio's copy of an example? Sizes first: hashing a 100 MP upload costs ~0.3 s."""
        return p.stat().st_size in self.example_sizes and _sha256(p) in self.example_hashes

    def _delete_upload(self, p: Path) -> None:
        p.unlink(missing_ok=True)
        try:
            p.parent.rmdir()  # Gradio keeps each upload in its own folder
        except OSError:
            pass
