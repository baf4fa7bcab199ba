"""UTKFace training data: manifest, face iterator over the tar shards, training packs.

The shards (``utkface/images-00N.tar``) are read in place with ``tarfile``: their
member headers are indexed once (name -> byte offset, size) and each JPEG is read
with a plain seek, so nothing is ever extracted to disk.

A *training pack* is a single uncompressed tar (no pickle, no npz) holding
``index.json`` first, then one JPEG per face, re-encoded at ``size`` px. It is
small enough to travel with the repo to a GPU machine. ``PackDataset`` loads all
JPEG bytes into memory once and decodes per item, so it is safe in forked or
spawned DataLoader workers (no file handle is shared).

Measured train-split pack sizes at 128 px, JPEG q85 (tar headers/padding add ~0.75 KiB
per face, ~16 MiB over the raw 78 MiB of JPEG for the whole split):
    min_sharpness  none   10    15    20    25    30    40    50    60
    faces         22415 21061 18678 16310 14174 12337  9452  7407  5996
    MiB            95.9  91.1  82.0  72.4  63.9  56.0  43.8  34.7  28.4
so repo + pack <= 64 MiB needs min_sharpness ~30 (or a lower quality).

CLI: ``python -m diffbfr.train.data pack --out packs/train128.tar [--min-sharpness 20]
[--size 128] [--quality 85] [--limit N] [--split train]``
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import tarfile
import time
from functools import lru_cache
from pathlib import Path
from typing import Collection, Iterator

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

SPLITS = ("train", "test")
PACK_FORMAT = "diffbfr-pack-v1"
INDEX_NAME = "index.json"


def default_data_dir() -> Path:
    """``$DIFFBFR_DATA`` if set, else ``<repo root>/../shared/data``."""
    env = os.environ.get("DIFFBFR_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def _data_dir(data_dir) -> Path:
    return Path(data_dir) if data_dir is not None else default_data_dir()


def _int_or_none(v: str):
    try:
        return int(v)
    except ValueError:
        return None


def read_manifest(data_dir=None) -> list[dict]:
    """Rows of ``utkface/manifest.csv`` with numeric columns converted."""
    path = _data_dir(data_dir) / "utkface" / "manifest.csv"
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            r["sharpness"] = float(r["sharpness"])
            r["saturation"] = float(r["saturation"])
            r["bytes"] = int(r["bytes"])
            for k in ("age", "gender", "race"):
                r[k] = _int_or_none(r[k])
            rows.append(r)
    return rows


def select_rows(rows: list[dict], split: str = "train", min_sharpness: float | None = None,
                limit: int | None = None, files: Collection[str] | None = None) -> list[dict]:
    """The manifest rows ``iter_faces`` yields: one split, sharp enough (and among ``files``
    when given), sorted by name."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    sel = [r for r in rows if r["split"] == split
           and (min_sharpness is None or r["sharpness"] >= min_sharpness)
           and (files is None or r["file"] in files)]
    sel.sort(key=lambda r: r["file"])
    return sel[:limit] if limit is not None else sel


@lru_cache(maxsize=16)
def _shard_index(path: str, mtime: float) -> dict[str, tuple[int, int]]:
    """name -> (data offset, size) for one shard; keyed on mtime so edits invalidate it."""
    with tarfile.open(path, "r:") as tf:
        return {m.name.rsplit("/", 1)[-1]: (m.offset_data, m.size) for m in tf if m.isfile()}


def shard_index(path: Path) -> dict[str, tuple[int, int]]:
    return _shard_index(str(path), path.stat().st_mtime)


def decode_jpeg(buf: bytes, size: int | None = None) -> np.ndarray:
    """JPEG/PNG bytes -> uint8 RGB HxWx3, resized with INTER_AREA to ``size`` if given."""
    bgr = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("could not decode image bytes")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if size is not None and rgb.shape[:2] != (size, size):
        rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb)


def iter_faces(split: str = "train", data_dir=None, min_sharpness: float | None = None,
               limit: int | None = None, size: int | None = None,
               files: Collection[str] | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(file name, uint8 RGB face)`` for one manifest split, sorted by file name.

    Faces are 200x200 (resized with INTER_AREA to ``size`` if given); ``min_sharpness``
    keeps rows with sharpness >= it; ``files`` keeps only those names; ``limit`` keeps the
    first N after filtering.
    """
    root = _data_dir(data_dir) / "utkface"
    rows = select_rows(read_manifest(data_dir), split, min_sharpness, limit, files)
    handles: dict[str, object] = {}
    try:
        for r in rows:
            shard = root / r["shard"]
            if r["shard"] not in handles:
                handles[r["shard"]] = (open(shard, "rb"), shard_index(shard))
            fh, index = handles[r["shard"]]
            if r["file"] not in index:
                raise KeyError(f"{r['file']} not found in {shard}")
            offset, nbytes = index[r["file"]]
            fh.seek(offset)
            yield r["file"], decode_jpeg(fh.read(nbytes), size)
    finally:
        for fh, _ in handles.values():
            fh.close()


def _add_member(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    # Fixed metadata so the same inputs give a byte-identical pack.
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tf.addfile(info, io.BytesIO(data))


def write_pack_file(out_path, index: dict, blobs: list[bytes]) -> None:
    """The pack layout itself: index.json first, then the JPEGs in index order (atomic write)."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".part")
    with tarfile.open(tmp, "w:", format=tarfile.USTAR_FORMAT) as tf:
        _add_member(tf, INDEX_NAME, json.dumps(index, separators=(",", ":")).encode())
        for name, blob in zip(index["names"], blobs):
            _add_member(tf, name, blob)
    tmp.replace(out_path)


def write_pack(out_path, split: str = "train", size: int = 128, quality: int = 85,
               min_sharpness: float | None = None, limit: int | None = None, data_dir=None) -> dict:
    """Write a training pack (see module docstring); returns stats (count, bytes, mib, seconds)."""
    t0 = time.perf_counter()
    rows = {r["file"]: r for r in read_manifest(data_dir)}
    names, sharp, blobs = [], [], []
    for name, face in iter_faces(split, data_dir, min_sharpness, limit, size):
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(face, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise RuntimeError(f"JPEG encoding failed for {name}")
        names.append(name)
        sharp.append(rows[name]["sharpness"])
        blobs.append(buf.tobytes())
    index = {"format": PACK_FORMAT, "split": split, "size": size, "quality": quality,
             "min_sharpness": min_sharpness, "count": len(names), "names": names, "sharpness": sharp}
    write_pack_file(out_path, index, blobs)
    out_path = Path(out_path)
    nbytes = out_path.stat().st_size
    return {"path": str(out_path), "count": len(names), "bytes": nbytes, "mib": nbytes / 2**20,
            "seconds": time.perf_counter() - t0, "split": split, "size": size, "quality": quality,
            "min_sharpness": min_sharpness}


def read_pack(path) -> tuple[dict, list[bytes]]:
    """(index, JPEG bytes in index order) of a pack, read fully into memory."""
    with tarfile.open(path, "r:") as tf:
        members = {m.name: m for m in tf if m.isfile()}
        if INDEX_NAME not in members:
            raise ValueError(f"{path}: no {INDEX_NAME}; not a diffbfr pack")
        index = json.loads(tf.extractfile(members[INDEX_NAME]).read())
        if index.get("format") != PACK_FORMAT:
            raise ValueError(f"{path}: unknown pack format {index.get('format')!r}")
        blobs = [tf.extractfile(members[n]).read() for n in index["names"]]
    return index, blobs


class PackDataset(Dataset):
    """Faces of a training pack: item = uint8 RGB HxWx3 numpy array.

    ``size`` resizes (INTER_AREA) when it differs from the pack's size; ``hflip``
    mirrors half the items, drawn from torch's RNG (seeded per DataLoader worker).
    """

    def __init__(self, path, size: int | None = None, hflip: bool = True):
        self.path = str(path)
        self.index, self._blobs = read_pack(path)
        self.names: list[str] = self.index["names"]
        self.sharpness: list[float] = self.index["sharpness"]
        self.size = size
        self.hflip = hflip

    def __len__(self) -> int:
        return len(self._blobs)

    def __getitem__(self, i: int) -> np.ndarray:
        img = decode_jpeg(self._blobs[i], self.size)
        if self.hflip and torch.rand(()) < 0.5:
            img = np.ascontiguousarray(img[:, ::-1])
        return img


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m diffbfr.train.data")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="write a training pack (tar of JPEG faces + index.json)")
    p.add_argument("--out", required=True)
    p.add_argument("--split", default="train", choices=SPLITS)
    p.add_argument("--min-sharpness", type=float, default=None)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--quality", type=int, default=85)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--data-dir", default=None)
    args = ap.parse_args(argv)
    st = write_pack(args.out, args.split, args.size, args.quality, args.min_sharpness,
                    args.limit, args.data_dir)
    print(f"{st['count']} faces  {st['mib']:.2f} MiB  {st['seconds']:.1f} s  -> {st['path']}")


if __name__ == "__main__":
    main()
