import numpy as np
import torch

from bench import prior_share as PS
from diffbfr.nets.panini_dafi import TINY_PANINI, PaniniNet
from diffbfr.nets.panini_dre import TINY as TINY_DRE, DRE


def test_prior_share_per_face_and_its_rank_correlation_with_severity():
    torch.manual_seed(0)
    net = PaniniNet(TINY_PANINI, DRE(TINY_DRE)).eval()
    rng = np.random.default_rng(0)
    lqs = [rng.integers(0, 256, (128, 128, 3), dtype=np.uint8) for _ in range(3)]
    shares = PS.face_shares(net, lqs, batch=2)
    assert len(shares) == 3 and all(0.0 <= s <= 1.0 for s in shares)
    # a share that rises with severity correlates near +1 (severity has ties), one that falls near -1
    assert PS.severity_rho({"light": [0.1, 0.2], "medium": [0.3, 0.4], "heavy": [0.5, 0.6]}) > 0.9
    assert PS.severity_rho({"light": [0.6, 0.5], "medium": [0.4, 0.3], "heavy": [0.2, 0.1]}) < -0.9
