"""UTKFace data: shard reading, split hygiene, sharpness filter, pack round trip."""
import tarfile

import numpy as np
import pytest

from diffbfr.train import data as D

DATA = D.default_data_dir()
needs_data = pytest.mark.skipif(not (DATA / "utkface" / "manifest.csv").exists(),
                                reason="shared data (../shared/data) not available")


def test_default_data_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("DIFFBFR_DATA", str(tmp_path))
    assert D.default_data_dir() == tmp_path
    monkeypatch.delenv("DIFFBFR_DATA")
    assert D.default_data_dir().parts[-2:] == ("shared", "data")


def test_select_rows_logic():
    rows = [{"file": f"{c}.jpg", "split": s, "sharpness": h}
            for c, s, h in [("d", "train", 5.0), ("a", "train", 50.0), ("c", "test", 99.0),
                            ("b", "train", 20.0), ("e", "test", 1.0)]]
    assert [r["file"] for r in D.select_rows(rows, "train")] == ["a.jpg", "b.jpg", "d.jpg"]
    assert [r["file"] for r in D.select_rows(rows, "train", min_sharpness=20)] == ["a.jpg", "b.jpg"]
    assert [r["file"] for r in D.select_rows(rows, "train", limit=1)] == ["a.jpg"]
    assert [r["file"] for r in D.select_rows(rows, "test")] == ["c.jpg", "e.jpg"]
    with pytest.raises(ValueError):
        D.select_rows(rows, "all")


@needs_data
def test_manifest_and_split_filter_on_full_manifest():
    rows = D.read_manifest()
    assert len(rows) > 20000
    test_names = {r["file"] for r in rows if r["split"] == "test"}
    assert len(test_names) > 500 and {r["split"] for r in rows} == {"train", "test"}
    train = D.select_rows(rows, "train")
    assert not test_names & {r["file"] for r in train}
    assert len(train) + len(test_names) == len(rows)
    names = [r["file"] for r in train]
    assert names == sorted(names)


@needs_data
def test_iter_faces_reads_real_images_and_respects_split():
    test_names = {r["file"] for r in D.read_manifest() if r["split"] == "test"}
    got = list(D.iter_faces("train", limit=40))
    assert len(got) == 40
    names = [n for n, _ in got]
    assert names == sorted(names) and not set(names) & test_names
    for _, img in got[:5]:
        assert img.shape == (200, 200, 3) and img.dtype == np.uint8 and img.flags.c_contiguous
        assert img.std() > 10 and 20 < img.mean() < 235  # a real photo, not a flat/blank decode
    test_got = list(D.iter_faces("test", limit=10, size=64))
    assert all(n in test_names for n, _ in test_got)
    assert all(im.shape == (64, 64, 3) for _, im in test_got)
    with pytest.raises(ValueError):
        next(D.iter_faces("everything"))


@needs_data
def test_min_sharpness_filter():
    sharp = {r["file"]: r["sharpness"] for r in D.read_manifest()}
    names = [n for n, _ in D.iter_faces("train", min_sharpness=100, limit=15)]
    assert len(names) == 15 and all(sharp[n] >= 100 for n in names)


@needs_data
def test_pack_round_trip(tmp_path):
    out = tmp_path / "p.tar"
    st = D.write_pack(out, size=128, limit=20, min_sharpness=20)
    assert st["count"] == 20 and out.stat().st_size == st["bytes"]
    with tarfile.open(out) as tf:
        members = tf.getnames()
    assert members[0] == "index.json" and len(members) == 21
    ds = D.PackDataset(out, hflip=False)
    assert len(ds) == 20 and ds.names == [n for n, _ in D.iter_faces("train", min_sharpness=20, limit=20)]
    img = ds[0]
    assert img.shape == (128, 128, 3) and img.dtype == np.uint8 and img.std() > 10
    # Same inputs -> byte-identical pack (fixed tar metadata).
    D.write_pack(tmp_path / "q.tar", size=128, limit=20, min_sharpness=20)
    assert (tmp_path / "q.tar").read_bytes() == out.read_bytes()
    # Resize on read and horizontal flip (the flipped item mirrors the unflipped one).
    assert D.PackDataset(out, size=64, hflip=False)[3].shape == (64, 64, 3)
    flip = D.PackDataset(out, hflip=True)
    items = [flip[0] for _ in range(16)]
    assert any(np.array_equal(x, img[:, ::-1]) for x in items)
    assert any(np.array_equal(x, img) for x in items)
    assert all(x.flags.c_contiguous for x in items)


@needs_data
def test_pack_in_dataloader_workers(tmp_path):
    import torch

    out = tmp_path / "p.tar"
    D.write_pack(out, size=64, limit=8)
    loader = torch.utils.data.DataLoader(D.PackDataset(out), batch_size=4, num_workers=2)
    batches = list(loader)
    assert len(batches) == 2 and batches[0].shape == (4, 64, 64, 3) and batches[0].dtype == torch.uint8
