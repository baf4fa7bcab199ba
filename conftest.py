"""pytest setup shared by every test file."""
import os

# OpenMP threads that spin while other processes hold the cores made torch tests ~40x slower
# on a busy 2-core machine; passive waiting costs nothing when the machine is idle.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


import cv2  # noqa: E402 (the environment must be set before torch loads)
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from diffbfr.train.data import PACK_FORMAT, write_pack_file  # noqa: E402


@pytest.fixture
def one_thread():
    """Tiny networks: one thread is fastest and does not fight other work on the 2 cores
    (2 threads were measured 14x slower than 1 for them on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def pack(tmp_path_factory):
    """8 smooth random faces in the real training-pack format (no dataset needed): with the
    trainers' 2 % hold-out rule, 4 train and 4 held out."""
    rng = np.random.default_rng(0)
    names, blobs = [], []
    for i in range(8):
        img = cv2.GaussianBlur(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8), (9, 9), 3)
        names.append(f"face{i}.jpg")
        blobs.append(cv2.imencode(".jpg", img)[1].tobytes())
    path = tmp_path_factory.mktemp("pack") / "pack.tar"
    write_pack_file(path, {"format": PACK_FORMAT, "names": names, "sharpness": [50.0] * 8, "size": 128}, blobs)
    return path
