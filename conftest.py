"""pytest setup shared by every test file."""
import os
import tempfile

import diffbfr  # noqa: F401  (first: it sets OMP_WAIT_POLICY before torch loads)
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from diffbfr.train.data import PACK_FORMAT, write_pack_file  # noqa: E402


# the variables that send the files of the processes the tests start (app.py servers, Chromium,
# the CLI) into a temporary folder
TEMP_VARIABLES = ("TMPDIR", "GRADIO_TEMP_DIR")
_saved_temp: list = []


@pytest.hookimpl(trylast=True)   # after pytest's tmp_path plugin has made its factory
def pytest_configure(config):
    """Nothing the tests run writes straight into the system's temp folder: tempfile's folder for
    this process (gradio_client stages every download in a folder of its own there and leaves
    it behind; bench.load makes its photos there), and TMPDIR and GRADIO_TEMP_DIR for it and the
    processes the tests start, all point into `system_tmp` in pytest's base temporary folder
    (kept and cleaned like its others). Set here, before any test module is imported: Gradio
    reads them on import. Tests that need a folder of their own still take tmp_path."""
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is None:   # pytest's tmp_path plugin is off: nothing to point into
        return
    folder = factory.getbasetemp() / "system_tmp"
    folder.mkdir(exist_ok=True)
    _saved_temp[:] = [tempfile.tempdir, {k: os.environ.get(k) for k in TEMP_VARIABLES}]
    tempfile.tempdir = str(folder)
    os.environ.update(TMPDIR=str(folder), GRADIO_TEMP_DIR=str(folder / "gradio"))


def pytest_unconfigure(config):
    if _saved_temp:
        tempfile.tempdir, env = _saved_temp
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _saved_temp.clear()


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
