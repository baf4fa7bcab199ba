"""Every CLI flag is checked like the settings (issue #30, items 9 and 10): a bad value is one
sentence and exit status 2, never Python's words or a traceback."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import app as app_module
from diffbfr.cli import main
from diffbfr.device import DeviceError, resolve_device

ROOT = Path(__file__).resolve().parent.parent
FACE = ROOT / "examples" / "astronaut_face_aligned.png"
PYTHON_WORDS = ("Traceback", "cannot convert", "math domain", "Error:", "assert")


def _refused(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert not any(w in err for w in PYTHON_WORDS), err
    return err


@pytest.mark.parametrize("value, got", [("nan", "got NaN"), ("inf", "got infinity"), ("-5", "got -5"),
                                        ("0", "got 0"), ("1e400", "got infinity"), ("lots", 'got "lots"')])
def test_max_pixels_is_validated_like_a_setting(tmp_path, capsys, value, got):
    err = _refused(["-i", str(FACE), "-o", str(tmp_path / "o"), "--tiny", "--max-pixels", value], capsys)
    assert "--max-pixels must be a whole number from 4096 to 150000000" in err and got in err
    assert not (tmp_path / "o").exists()


def test_max_pixels_in_range_downscales(tmp_path, capsys):
    assert main(["-i", str(FACE), "-o", str(tmp_path / "o"), "--tiny", "--aligned", "--max-pixels", "4096",
                 "--irm64-steps", "1", "--irm128-steps", "1", "--tem-steps", "1"]) == 0
    import json
    assert json.loads((tmp_path / "o" / "astronaut_face_aligned.json").read_text())["size"] == [64, 64]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this torch has CUDA: --device cuda is valid")
def test_cuda_on_a_cpu_only_torch_is_one_sentence_and_status_2(tmp_path, capsys):
    assert main(["-i", str(FACE), "-o", str(tmp_path / "o"), "--tiny", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--device cuda asks for a GPU" in err and "--device cpu" in err
    with pytest.raises(SystemExit) as exc:
        app_module.main(["--device", "cuda", "--tiny", "--no-warm"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--device cuda asks for a GPU" in err


def test_a_device_name_that_is_not_one_is_refused():
    for bad in ("gpu0", "cuda:x", "mps"):
        with pytest.raises(DeviceError, match="--device"):
            resolve_device(bad)
    assert resolve_device("cpu") == torch.device("cpu") and resolve_device(None).type in ("cpu", "cuda")
