"""Training: UTKFace packs (data.py), the blind-restoration degradations (degrade.py), the
training loop written once (loop.py: Trainer + run; run_state.py: resume and --init-from) and
one trainer per family of networks, plus the fit of Auto's calibration:

    python -m diffbfr.train --help                      # lists every trainer and what it writes
    python -m diffbfr.train irm64|irm128|tem128 --pack packs/gpu128.tar --init-from scratch
"""
