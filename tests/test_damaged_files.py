"""A JPEG the decoder reports as damaged is said to be (issue #30, item 12): Pillow decodes
500 zeroed bytes without a word; the loader asks libjpeg (diffbfr/jpeg_damage.py) and every
surface shows the notice."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from diffbfr import methods
from diffbfr.imageio import load_image
from diffbfr.jpeg_damage import damage

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def zeroed(path: Path, n: int = 500) -> bytes:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + n] = bytes(n)
    return bytes(data)


@pytest.fixture
def corrupt(tmp_path) -> Path:
    path = tmp_path / "two_people_damaged.jpg"
    path.write_bytes(zeroed(EXAMPLES / "two_people.jpg"))
    return path


def test_the_loader_says_a_jpeg_is_damaged(corrupt):
    for src in (corrupt, corrupt.read_bytes()):
        notices = load_image(src).notices
        assert any("damaged" in n and "may be incomplete" in n for n in notices), notices
    assert "Corrupt JPEG data" in damage(corrupt.read_bytes())


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.jpg")))
def test_sound_jpegs_are_not_called_damaged(name):
    assert damage(EXAMPLES / name) is None
    assert not any("damaged" in n for n in load_image(EXAMPLES / name).notices)


def test_cli_and_app_show_the_damage(corrupt, tmp_path, monkeypatch, capsys):
    from diffbfr.cli import main
    main(["-i", str(corrupt), "-o", str(tmp_path / "o"), "--tiny", "--irm64-steps", "1",
          "--irm128-steps", "1", "--tem-steps", "1"])
    assert "the result may be incomplete" in capsys.readouterr().out
    record = json.loads((tmp_path / "o" / "two_people_damaged.json").read_text())
    assert any("damaged" in n for n in record["notices"])

    from ui.handlers import Handlers
    from ui.state import AppState
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    h = Handlers(AppState({"diffbfr": methods.tiny("diffbfr")}, identity=False), [])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status = h.on_image(str(corrupt))[1]
    assert "damaged" in status and "may be incomplete" in status
