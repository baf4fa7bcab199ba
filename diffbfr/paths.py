"""Where the shipped files are: weights/ and examples/ sit beside the package in a checkout,
which `pip install -e .` (an editable install) keeps; so the Python API, the CLI
(diffbfr-restore) and the app (diffbfr-app) find them from any current folder.

A non-editable install (`pip install .`) carries the code only, not the ~30 MB of weights: it
uses DIFFBFR_ROOT when set (a checkout or a copy of its weights/ and examples/), else the
current folder (run it from a checkout); --weights points anywhere else."""
from __future__ import annotations

import os
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent


def project_root() -> Path:
    """The folder holding weights/ and examples/ (see the module doc)."""
    if os.environ.get("DIFFBFR_ROOT"):
        return Path(os.environ["DIFFBFR_ROOT"]).expanduser()
    return _CHECKOUT if (_CHECKOUT / "weights").is_dir() else Path.cwd()


ROOT = project_root()
WEIGHTS = ROOT / "weights"
EXAMPLES = ROOT / "examples"
