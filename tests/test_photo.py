"""The photo path (diffbfr/photo.py) with random tiny DiffBFR networks: faces found, per-face
stages, batching, the stage cache (which reruns are needed is read off the stage table, not
listed by hand), selection, limits and notices; and the README's Python example."""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffbfr import methods
from diffbfr.faces.align import align_crop
from diffbfr.methods import DiffBFRSettings
from diffbfr.face_stages import worker_runner
from diffbfr.photo import PhotoOptions, PhotoRestorer, restore_face, restore_faces, restore_photo
from diffbfr.stage_cache import LRUCache, image_key

ROOT = Path(__file__).resolve().parent.parent
FACE = np.asarray(Image.open(ROOT / "examples" / "astronaut_face_aligned.png").convert("RGB"))
FAST = DiffBFRSettings(irm64_steps=2, irm128_steps=1, tem_steps=1)
ALIGNED = PhotoOptions(aligned=True)


@pytest.fixture(scope="module")
def model():
    return methods.tiny("diffbfr")


@pytest.fixture
def runs(model):
    """Names of the stages the model runs (one entry per network call)."""
    seen = []
    original = model.run_stage
    model.run_stage = lambda name, *a, **k: seen.append(name) or original(name, *a, **k)
    yield seen
    del model.run_stage


def rand_face(seed):
    return np.random.default_rng(seed).integers(0, 256, (128, 128, 3), dtype=np.uint8)


def test_every_stage_comes_back_in_shape(model):
    st = restore_face(model, FACE, FAST)
    assert list(st.images) == ["lq", "irm64", "irm128", "tem"] and st.final == "tem"
    assert st["irm64"].shape == (64, 64, 3) and st.result.shape == (128, 128, 3)
    assert st.nfe == {"irm64": 2, "irm128": 1, "tem": 1} and set(st.timings) == {"irm64", "irm128", "tem"}
    assert not np.array_equal(st["irm128"], st["tem"])


def test_seeds_and_skipped_stages(model):
    a, b = restore_face(model, FACE, FAST), restore_face(model, FACE, FAST)
    c = restore_face(model, FACE, replace(FAST, seed=6))
    assert np.array_equal(a.result, b.result) and not np.array_equal(a["irm64"], c["irm64"])
    off = restore_face(model, FACE, DiffBFRSettings(irm_start=0, irm2_start=0, tem_t=0))
    assert np.array_equal(off["tem"], off["irm128"]) and off.nfe == {"irm64": 0, "irm128": 0, "tem": 0}
    # stage 1 skipped: stage 2 starts from the LQ face at 128 px, not from a 64 px round trip
    assert np.array_equal(off["irm128"], off["lq"])
    skip1 = restore_face(model, FACE, replace(FAST, irm_start=0, irm2_start=0))
    assert np.array_equal(skip1["irm128"], skip1["lq"])
    assert not np.array_equal(restore_face(model, FACE, replace(FAST, irm_start=10, irm2_start=0))["irm128"],
                              skip1["lq"])


def test_stage1_hands_over_the_mean_of_its_samples(model):
    """irm64_samples > 1: stage 1 averages that many draws; the result varies less with the seed,
    costs that many passes, and still does not depend on the other faces of the batch."""
    def stage1(n, seed, faces=(FACE,)):
        return restore_faces(model, list(faces), replace(FAST, irm64_samples=n, seed=seed))[0]

    spread = {n: np.std([stage1(n, seed)["irm64"].astype(np.float32) for seed in range(4)], axis=0).mean()
              for n in (1, 4)}
    assert spread[4] < 0.75 * spread[1], spread
    assert stage1(3, 0).nfe["irm64"] == FAST.irm64_steps  # steps: the 3 samples share each network call
    assert np.array_equal(stage1(3, 0)["irm64"], stage1(3, 0, (FACE, rand_face(1)))["irm64"])


def test_bad_face_is_a_clear_error(model):
    with pytest.raises(ValueError, match="uint8"):
        restore_face(model, np.zeros((128, 128, 3), np.float32))


def test_batched_faces_match_faces_alone(model):
    faces = [FACE, rand_face(1), rand_face(2)]
    s = replace(FAST, eta=0.5)                       # per-step noise too
    batched = restore_faces(model, faces, s)
    for face, st in zip(faces, batched):
        alone = restore_face(model, face, s)
        for name in ("irm64", "irm128", "tem"):       # batched convolutions: within 1 grey level
            assert np.abs(st[name].astype(int) - alone[name].astype(int)).max() <= 1, name


def test_cached_rerun_runs_exactly_the_stages_the_table_says(model, runs):
    method = model.method
    for setting, value in (("tem_t", 30.0), ("irm2_start", 400.0), ("irm_start", 300.0), ("seed", 9)):
        cache = LRUCache(64)
        first = restore_faces(model, [FACE], FAST, cache, ["f"])[0]
        runs.clear()
        changed = restore_faces(model, [FACE], replace(FAST, **{setting: value}), cache, ["f"])[0]
        start = next(i for i, st in enumerate(method.stages) if setting in method.key_fields(st.name))
        assert method.stage_names[start] == {"tem_t": "tem", "irm2_start": "irm128"}.get(setting, "irm64")
        assert runs == list(method.stage_names[start:]), setting
        for name in method.stage_names[:start]:
            assert np.array_equal(changed[name], first[name])
        runs.clear()                                  # back: all from the cache, identical
        again = restore_faces(model, [FACE], FAST, cache, ["f"])[0]
        assert runs == [] and np.array_equal(again.result, first.result)


def test_cache_assembled_result_equals_a_fresh_one(model):
    cache = LRUCache(64)
    target = replace(FAST, irm2_start=350.0, tem_t=22.0)
    restore_faces(model, [FACE], FAST, cache, ["f"])
    restore_faces(model, [FACE], replace(FAST, tem_t=22.0), cache, ["f"])
    warm = restore_faces(model, [FACE], target, cache, ["f"])[0]
    cold = restore_face(model, FACE, target)
    assert all(np.array_equal(warm[n], cold[n]) for n in ("irm64", "irm128", "tem"))


def _two_face_photo(restorer):
    """A photo of two aligned crops side by side, with its 'detections' planted in the cache."""
    photo = np.concatenate([FACE, FACE[:, ::-1]], axis=1)
    faces = [align_crop(FACE, "utk"), align_crop(FACE[:, ::-1].copy(), "utk")]
    faces[1].matrix = faces[1].matrix.copy()
    faces[1].matrix[0, 2] -= 128.0  # the second crop sits 128 px to the right in the photo
    restorer.detections.put((image_key(photo), False, False), (faces, []))
    return photo


def test_photo_faces_run_as_one_batch_and_selection_skips_faces(model, runs):
    r = PhotoRestorer(model, identity=False)
    photo = _two_face_photo(r)
    out = r.restore(photo, FAST)
    assert runs == ["irm64", "irm128", "tem"]        # two faces, one call per stage
    assert [f.index for f in out.faces] == [0, 1] and out.image.shape == photo.shape
    runs.clear()
    only_second = r.restore(photo, replace(FAST, seed=4), PhotoOptions(select=[1]))
    assert runs == ["irm64", "irm128", "tem"] and [f.index for f in only_second.faces] == [1]
    left = (slice(None), slice(0, 120))                # the unselected face is pasted back untouched
    assert np.array_equal(only_second.image[left], photo[left])
    none = r.restore(photo, FAST, PhotoOptions(select=[]))
    assert none.faces == [] and np.array_equal(none.image, photo) and "No face selected" in none.notices[-1]


def test_max_faces_keeps_the_largest_and_says_so(model):
    r = PhotoRestorer(model, identity=False, max_faces=1)
    photo = _two_face_photo(r)
    found, _ = r.find(photo)
    found[0].face_size = 300.0                         # make the first face the larger one
    out = r.restore(photo, FAST)
    assert [f.index for f in out.faces] == [0] and "restoring the 1 largest" in " ".join(out.notices)


def test_progress_is_monotone_and_names_steps(model):
    seen = []
    PhotoRestorer(model, identity=False).restore(FACE, FAST, PhotoOptions(aligned=True),
                                                 progress=lambda f, m: seen.append((f, m)))
    assert seen[0][0] is None   # the first step (detection, or taking the aligned face) has no measure
    fractions = [f for f, _ in seen if f is not None]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    text = " / ".join(m for _, m in seen)
    for part in ("Found 1 face", "IRM 64: step 2/2", "IRM 128: step 1/1", "TEM", "Pasting"):
        assert part in text


def test_no_face_photo_gives_its_reason(model):
    out = restore_photo(model, np.full((200, 240, 3), 128, np.uint8), FAST, identity=False)
    assert out.faces == [] and out.found == [] and np.array_equal(out.image, out.before)
    assert out.notices and "No face" in out.notices[0]


def test_identity_is_computed_per_face_and_cached(model, monkeypatch):
    """The distance is |embedding(input face) - embedding(result)|, each embedding computed once:
    a stand-in embedding (the mean colour) makes the expected number known."""
    import diffbfr.photo as photo
    calls = []

    def embedding(face, aligned):
        calls.append(face)
        return face.reshape(-1, 3).mean(0) / 255.0
    monkeypatch.setattr(photo, "face_embedding", embedding)
    r = PhotoRestorer(model)
    a = r.restore(FACE, FAST, ALIGNED).faces[0]
    assert len(calls) == 2   # the input face's embedding and the result's
    expected = float(np.linalg.norm(embedding(a.stages["lq"], True) - embedding(a.stages.result, True)))
    assert a.identity == pytest.approx(expected) and a.identity > 0
    calls.clear()
    hits = r.identities.hits
    b = r.restore(FACE, FAST, ALIGNED).faces[0]
    assert b.identity == a.identity and r.identities.hits > hits and calls == []   # cached, not recomputed
    c = r.restore(FACE, replace(FAST, tem_t=40.0), ALIGNED).faces[0]   # a new result: only its embedding
    assert len(calls) == 1 and c.identity is not None


def test_identity_of_a_real_face_is_a_distance(model):
    """The real dlib embedding: the example face is found in its own input crop."""
    from diffbfr.faces.identity import face_embedding
    e = face_embedding(FACE, aligned=True)
    assert e is not None and e.shape == (128,) and np.linalg.norm(e - face_embedding(FACE, aligned=True)) < 1e-6


def test_readme_python_example_runs_as_written(monkeypatch, tmp_path):
    """The README's Python API block, run with tiny networks instead of the shipped weights,
    from another folder than the checkout (it must not depend on the current folder)."""
    text = (ROOT / "README.md").read_text()
    code = re.search(r"<!-- example:python -->\s*```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(methods, "load", lambda *a, **k: methods.tiny("diffbfr"))
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["result"].image.shape == namespace["photo"].shape
    assert namespace["stages"].result.shape == (128, 128, 3)


def test_per_face_settings_batch_by_what_each_stage_reads(model, runs):
    faces = [FACE, rand_face(3)]
    per = [FAST, replace(FAST, tem_t=40.0)]            # same IRM settings, different TEM
    both = restore_faces(model, faces, per)
    assert runs == ["irm64", "irm128", "tem", "tem"]   # IRM batched together, TEM apart
    for face, s, st in zip(faces, per, both):
        alone = restore_face(model, face, s)
        assert np.abs(st.result.astype(int) - alone.result.astype(int)).max() <= 1
    with pytest.raises(ValueError, match="2 settings for 1 faces"):
        restore_faces(model, [FACE], per)


def test_photo_options_are_one_checked_record():
    """The CLI, the page and the API fill one record; a scale from a form or a flag reads as a number."""
    assert PhotoOptions(scale="2", select=[2, 0]) == PhotoOptions(scale=2, select=(2, 0))
    assert PhotoOptions(scale="auto").scale == "auto" and PhotoOptions().auto
    with pytest.raises(ValueError, match="scale must be one of"):
        PhotoOptions(scale=3)


@pytest.mark.parametrize("crosses", [True, False])
def test_worker_runner_sends_the_model_by_name(model, crosses):
    """The app's runner (a ZeroGPU worker on a Space): the model travels by name, and progress
    goes along only where it can cross to the worker; the images are the plain run's."""
    names, seen = [], []

    def wrap(fn):   # what spaces.GPU does, minus the other process
        return lambda method, *a, **k: names.append(method) or fn(method, *a, **k)
    runner = worker_runner({"diffbfr": model}, wrap, progress_crosses=crosses)
    (st,) = restore_faces(model, [FACE], FAST, runner=runner, progress=lambda f, m: seen.append(m))
    assert names == ["diffbfr"] and bool(seen) == crosses
    assert np.array_equal(st.result, restore_face(model, FACE, FAST).result)
