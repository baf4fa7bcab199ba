"""Training: UTKFace packs (data.py), the blind-restoration degradations (degrade.py), the
shared loop utilities (loop.py) and one trainer per family of networks.

    python -m diffbfr.train irm64|irm128|tem128 --pack packs/gpu128.tar ...
"""
