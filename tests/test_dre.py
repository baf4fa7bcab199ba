"""Panini-Net's degradation representation encoder: network, MoCo pieces, the positive-pair
sampler, save/load, the trainer (tiny, synthetic pack, resume) and bench.dre_retrieval --quick."""
import dataclasses
import json

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from bench import dre_retrieval as bench_dre
from diffbfr.checkpoint import load_network, save_network
from diffbfr.nets.panini_dre import DRE, TINY, DREConfig, KeyQueue, MoCo, info_nce
from diffbfr.train import dre_trainer as train
from diffbfr.train.data import PACK_FORMAT, write_pack_file


def smooth_faces(n, size=128, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([cv2.resize(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), (size, size),
                                interpolation=cv2.INTER_CUBIC) for _ in range(n)])


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    """A synthetic 36-face pack in the real pack format (no dataset needed)."""
    faces = smooth_faces(36)
    names = [f"face{i}.jpg" for i in range(len(faces))]
    blobs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes() for f in faces]
    path = tmp_path_factory.mktemp("pack") / "pack.tar"
    write_pack_file(path, {"format": PACK_FORMAT, "names": names, "sharpness": [50.0] * len(names), "size": 128},
                    blobs)
    return path


# ---------------------------------------------------------------- network
@pytest.mark.parametrize("side", [64, 128])
def test_default_dre_gives_256_d_vectors(side):
    dre = DRE().eval()
    with torch.no_grad():
        out = dre(torch.rand(2, 3, side, side) * 2 - 1)
    assert dre.out_dim == 256 and out.shape == (2, 256) and out.dtype == torch.float32


def test_tiny_dre_shapes_and_config_round_trip():
    dre = DRE(TINY)
    assert dre(torch.zeros(3, 3, 64, 64)).shape == (3, TINY.out_dim) == (3, 256)
    d = TINY.to_dict()
    assert json.loads(json.dumps(d)) == d and DREConfig.from_dict(d) == TINY


def test_save_load_bit_exact(tmp_path):
    torch.manual_seed(0)
    dre = DRE(TINY)
    dre.train()(torch.rand(4, 3, 32, 32))  # non-trivial BatchNorm running statistics
    path = save_network(dre, tmp_path / "dre.safetensors", {"note": "test"}, dtype=None)
    back = load_network(path)
    for k, v in dre.state_dict().items():
        assert torch.equal(v, back.state_dict()[k]), k
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(dre.eval()(x), back(x))
    # fp16 export: the stored tensors are exactly the fp16-rounded weights, and load upcasts them
    path16 = save_network(dre, tmp_path / "dre16.safetensors")
    stored = load_file(str(path16))
    assert stored["body.0.weight"].dtype == torch.float16
    back16 = load_network(path16)
    assert torch.equal(back16.body[0].weight, dre.body[0].weight.half().float())


# ---------------------------------------------------------------- MoCo pieces
def test_queue_enqueue_moves_pointer_writes_normalised_keys_and_wraps():
    q = KeyQueue(dim=8, size=10)
    k1 = torch.nn.functional.normalize(torch.randn(6, 8), dim=1)
    q.enqueue(k1)
    assert int(q.ptr) == 6 and torch.equal(q.keys[:, :6], k1.T)
    k2 = torch.nn.functional.normalize(torch.randn(6, 8), dim=1)
    old = q.keys[:, 2:6].clone()
    q.enqueue(k2)  # 4 at the end, 2 wrap to the front
    assert int(q.ptr) == 2
    assert torch.equal(q.keys[:, 6:], k2[:4].T) and torch.equal(q.keys[:, :2], k2[4:].T)
    assert torch.equal(q.keys[:, 2:6], old)  # the rest is untouched
    assert torch.allclose(q.keys.norm(dim=0), torch.ones(10))


def test_moco_step_updates_queue_and_key_encoder_by_the_momentum_rule():
    torch.manual_seed(0)
    moco = MoCo(TINY, queue_size=16, momentum=0.9)
    opt = torch.optim.SGD(moco.query_parameters(), lr=0.5)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    out = moco(x, x.flip(3))
    out["loss"].backward()
    opt.step()  # the query side moves, the key side not yet
    assert int(moco.queue.ptr) == 4 and torch.equal(moco.queue.keys[:, :4], out["k"].T)
    assert torch.allclose(moco.queue.keys[:, :4].norm(dim=0), torch.ones(4))
    key0 = [p.clone() for p in moco.encoder_k.parameters()] + [p.clone() for p in moco.head_k.parameters()]
    query = list(moco.encoder_q.parameters()) + list(moco.head_q.parameters())
    assert not all(torch.equal(a, b) for a, b in zip(key0, query))
    moco.momentum_step()
    key1 = list(moco.encoder_k.parameters()) + list(moco.head_k.parameters())
    for k0, k1, q in zip(key0, key1, query):
        torch.testing.assert_close(k1, 0.9 * k0 + 0.1 * q.detach(), rtol=0, atol=1e-6)
    assert all(not p.requires_grad for p in moco.encoder_k.parameters())


def test_info_nce_is_lower_when_the_positive_is_the_query_itself():
    torch.manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(8, 16), dim=1)
    other = torch.nn.functional.normalize(torch.randn(8, 16), dim=1)
    queue = torch.nn.functional.normalize(torch.randn(16, 64), dim=0)
    same, logits = info_nce(q, q, queue, 0.07)
    diff, _ = info_nce(q, other, queue, 0.07)
    assert same < diff and logits.shape == (8, 65)
    assert torch.allclose(logits[:, 0], torch.full((8,), 1 / 0.07))


# ---------------------------------------------------------------- positive pairs
def test_sampler_pairs_two_different_faces_with_identical_degradation():
    faces = smooth_faces(5)
    sampler = train.PairSampler(faces, indices=[0, 2, 3], crop=64)
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = sampler.pair(rng)
        i, j = p.faces
        assert i != j and {i, j} <= {0, 2, 3}
        pq, pk = p.params
        # every degradation parameter is the same; only the noise realisation differs
        assert dataclasses.replace(pk, noise_seed=pq.noise_seed) == pq and pk.noise_seed != pq.noise_seed
        assert p.query.shape == p.key.shape == (64, 64, 3) and p.query.dtype == np.uint8
    shared = train.PairSampler(faces, crop=None, share_noise=True).pair(rng)
    assert shared.params[0] is shared.params[1] and shared.query.shape == (128, 128, 3)
    b = sampler.batch(3, np.random.default_rng(1))
    assert b["query"].shape == b["key"].shape == (3, 3, 64, 64) and b["faces"].shape == (3, 2)
    assert b["query"].min() >= -1 and b["query"].max() <= 1
    assert (b["faces"][:, 0] != b["faces"][:, 1]).all()


def test_pair_view_is_the_whole_degraded_face_cropped_on_the_grid():
    faces = smooth_faces(2)
    whole = train.PairSampler(faces, crop=None, hflip=False).pair(np.random.default_rng(3))
    cropped = train.PairSampler(faces, crop=64, hflip=False).pair(np.random.default_rng(3))
    assert whole.faces == cropped.faces and whole.params == cropped.params
    q = whole.query
    hits = [(y, x) for y in range(0, 65, 16) for x in range(0, 65, 16)
            if np.array_equal(q[y:y + 64, x:x + 64], cropped.query)]
    assert hits  # the crop is a grid-aligned window of the degraded whole face


# ---------------------------------------------------------------- trainer
def test_training_steps_improve_on_a_tiny_synthetic_set():
    torch.manual_seed(0)
    sampler = train.PairSampler(smooth_faces(12), crop=32)
    moco = MoCo(TINY, queue_size=32)
    opt = torch.optim.Adam(moco.query_parameters(), lr=3e-3)
    vq, vk = train.val_set(smooth_faces(16, seed=1), range(16), pairs=8)
    before = train.val_metrics(moco, vq, vk, torch.device("cpu"))
    for step in range(15):
        b = sampler.batch(8, np.random.default_rng([0, step]))
        train.train_step(moco, opt, b["query"], b["key"])
    after = train.val_metrics(moco, vq, vk, torch.device("cpu"))
    assert after["val_loss"] < before["val_loss"], (before, after)


def test_trainer_runs_exports_and_resumes(pack, tmp_path, capsys):
    common = ["dre", "--pack", str(pack), "--tiny", "--batch", "4", "--crop", "32", "--queue", "16",
              "--run-dir", str(tmp_path / "run"), "--export", str(tmp_path / "w"), "--log-every", "1",
              "--val-every", "0", "--warmup", "0"]
    first = train.main(common + ["--max-steps", "2"])
    assert first["steps"] == 2 and json.loads((tmp_path / "run" / "state.json").read_text())["step"] == 2
    exported = tmp_path / "w" / "dre.safetensors"
    before = exported.read_bytes()
    meta = json.loads((tmp_path / "w" / "dre.json").read_text())
    assert meta["config"] == TINY.to_dict() and meta["meta"]["args"]["crop"] == 32
    assert not any(k.startswith(("head", "encoder_k")) for k in load_file(str(exported)))  # query encoder only
    assert load_network(exported)(torch.zeros(1, 3, 128, 128)).shape == (1, 256)

    second = train.main(common + ["--max-steps", "4", "--init-from", "resume"])
    assert "--init-from resume -> step 2" in capsys.readouterr().out
    assert second["steps"] == 4 and exported.read_bytes() != before


# ---------------------------------------------------------------- bench
def test_bench_quick_runs(tmp_path, capsys):
    report = bench_dre.main(["--quick", "--tiny", "--plot", str(tmp_path / "p.png"),
                             "--json", str(tmp_path / "r.json")])
    assert (tmp_path / "p.png").stat().st_size > 0 and json.loads((tmp_path / "r.json").read_text())["faces"] == 4
    res = report["results"]["DRE (tiny, random)"]
    assert res["level"]["chance"] == pytest.approx(1 / 3) and 0 <= res["own-face NN"]["rate"] <= 1
    assert "| level |" in capsys.readouterr().out


def test_knn_ignores_the_same_face_and_own_face_rate():
    # 3 faces x 2 conditions; embeddings = face identity only -> degradation labels unrecoverable
    face_ids = np.array([0, 0, 1, 1, 2, 2])
    labels = np.array(["a", "b"] * 3)
    x = np.eye(3)[face_ids] + 1e-3 * np.arange(6)[:, None]
    sim = bench_dre.similarity(x)
    assert bench_dre.own_face_rate(sim, face_ids) == 1.0
    # embeddings = degradation only -> every other-face neighbour has the right label
    y = np.eye(2)[[0, 1] * 3] + 1e-3 * np.arange(6)[:, None]
    assert bench_dre.knn_accuracy(bench_dre.similarity(y), labels, face_ids, 1) == 1.0
    assert bench_dre.own_face_rate(bench_dre.similarity(y), face_ids) == 0.0
