"""Weights roots built in a test's tmp_path (standard library only: the browser test imports it).

The shipped Panini-Net is trained, so the page's "not yet trained" path is tested on a root
whose panini manifest names network files that do not exist."""
from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT / "weights"


def untrained_panini_root(tmp_path: Path) -> Path:
    """A weights root as the app reads one: the shipped DiffBFR and estimator folders (linked, not
    copied) and a panini folder holding only a manifest, whose networks are not there."""
    root = Path(tmp_path) / "weights"
    (root / "panini").mkdir(parents=True)
    for name in ("diffbfr", "estimator"):
        (root / name).symlink_to(WEIGHTS / name, target_is_directory=True)
    card = json.loads((WEIGHTS / "panini" / "manifest.json").read_text())
    card.update(status="not trained", beats_bicubic=False,
                networks={n: f"{n}.safetensors" for n in card["networks"]})
    card.pop("validation", None)
    (root / "panini" / "manifest.json").write_text(json.dumps(card, indent=2))
    return root
