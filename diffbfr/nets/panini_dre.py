"""The degradation representation encoder (DRE) of Panini-Net and its contrastive pretraining.

DRE: six 3x3 convolutions with BatchNorm + LeakyReLU(0.1) (widths 64, 64, 128/s2, 128,
256/s2, 256), global average pool -> one 256-d vector per face that describes *how* the face
is degraded (blur, resolution, noise, JPEG), not *whose* face it is.  DAFI (panini_dafi.py) reads it
to decide, channel by channel, how much to trust the LQ input against the GAN prior.

Pretraining (DASR's recipe, Wang et al. CVPR 2021, as adapted by Panini-Net): MoCo with a
query encoder + MLP head, a key encoder + head that follows it by momentum, a queue of past
normalised keys as negatives, and InfoNCE.  Panini-Net's change is the positive pair: two
*different* faces degraded with the *same* parameters (the sampler is in
diffbfr/train/dre_trainer.py), so the only thing a query shares with its positive is the degradation.
Only the query encoder is shipped; the heads and the key encoder exist for training.

The global average pool makes the encoder size-agnostic: it is trained on crops (48 px by
default) and used on whole 128 px faces.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import ConfigMixin


@dataclass
class DREConfig(ConfigMixin):
    widths: tuple[int, ...] = (64, 64, 128, 128, 256, 256)
    strides: tuple[int, ...] = (1, 1, 2, 1, 2, 1)
    negative_slope: float = 0.1
    head_dim: int = 256          # MLP head width (pretraining only; not part of the DRE)
    name: str = "dre"

    def __post_init__(self):
        if len(self.widths) != len(self.strides) or not self.widths:
            raise ValueError(f"widths {self.widths} and strides {self.strides} must pair up")

    @property
    def out_dim(self) -> int:
        return self.widths[-1]


# The last width stays 256 so that a tiny DRE plugs into TINY_PANINI (dre_dim 256).
TINY = DREConfig(widths=(8, 8, 16, 16, 32, 256), head_dim=32, name="dre-tiny")


class DRE(nn.Module):
    """N x 3 x H x W in [-1, 1] (any H, W >= 4) -> N x out_dim degradation vectors."""

    def __init__(self, config: DREConfig | None = None):
        super().__init__()
        self.config = cfg = config or DREConfig()
        layers, cin = [], 3
        for cout, stride in zip(cfg.widths, cfg.strides):
            # no conv bias: the BatchNorm shift right after it makes one redundant
            layers += [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                       nn.LeakyReLU(cfg.negative_slope)]
            cin = cout
        self.body = nn.Sequential(*layers)
        self.out_dim = cfg.out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).float().mean((2, 3))


class Head(nn.Module):
    """The MLP projection the contrastive loss sees (256 -> 256 -> 256, LeakyReLU); dropped
    after pretraining, as in SimCLR/MoCo v2: the vector before it keeps more information."""

    def __init__(self, cin: int, dim: int, negative_slope: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(cin, dim), nn.LeakyReLU(negative_slope), nn.Linear(dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor,
             temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """InfoNCE of normalised queries q (N x D) against their positives k (N x D) and the
    negatives ``queue`` (D x K).  Returns (loss, logits N x (1 + K)); the positive is column 0."""
    pos = (q * k).sum(1, keepdim=True)
    neg = q @ queue
    logits = torch.cat([pos, neg], 1).float() / temperature
    labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, labels), logits


class KeyQueue(nn.Module):
    """Ring buffer of the last ``size`` normalised keys (columns of ``keys``, D x size)."""

    def __init__(self, dim: int, size: int):
        super().__init__()
        # random unit vectors until real keys replace them (MoCo's initialisation)
        self.register_buffer("keys", F.normalize(torch.randn(dim, size), dim=0))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @property
    def size(self) -> int:
        return self.keys.shape[1]

    @torch.no_grad()
    def enqueue(self, k: torch.Tensor) -> None:
        """Overwrite the oldest len(k) columns and advance the pointer (wrapping around)."""
        n = k.shape[0]
        if n > self.size:
            raise ValueError(f"{n} keys do not fit a queue of {self.size}")
        ptr = int(self.ptr)
        idx = (ptr + torch.arange(n, device=k.device)) % self.size
        self.keys[:, idx] = k.detach().to(self.keys.dtype).T
        self.ptr.fill_((ptr + n) % self.size)


class MoCo(nn.Module):
    """MoCo pretraining wrapper around a DRE.

    One step: ``momentum_step()`` (key side <- EMA of the query side), then
    ``forward(x_query, x_key)``: embed queries (with gradient) and keys (without), InfoNCE
    against the queue as it was before this batch, enqueue the keys.  The caller does backward +
    optimizer step on ``query_parameters()`` only.
    """

    def __init__(self, config: DREConfig | None = None, queue_size: int = 8192, momentum: float = 0.999,
                 temperature: float = 0.07):
        super().__init__()
        self.config = cfg = config or DREConfig()
        self.momentum, self.temperature = momentum, temperature
        self.encoder_q = DRE(cfg)
        self.head_q = Head(cfg.out_dim, cfg.head_dim, cfg.negative_slope)
        # the key side starts as an exact copy and never receives gradients
        self.encoder_k = copy.deepcopy(self.encoder_q).requires_grad_(False)
        self.head_k = copy.deepcopy(self.head_q).requires_grad_(False)
        self.queue = KeyQueue(cfg.head_dim, queue_size)

    def parts(self) -> dict[str, nn.Module]:
        """The pieces by name, as the trainer saves and resumes them."""
        return {"encoder_q": self.encoder_q, "head_q": self.head_q, "encoder_k": self.encoder_k,
                "head_k": self.head_k, "queue": self.queue}

    def query_parameters(self) -> list[nn.Parameter]:
        return list(self.encoder_q.parameters()) + list(self.head_q.parameters())

    def embed_query(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head_q(self.encoder_q(x)).float(), dim=1)

    @torch.no_grad()
    def embed_key(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head_k(self.encoder_k(x)).float(), dim=1)

    @torch.no_grad()
    def momentum_step(self) -> None:
        """key <- m * key + (1 - m) * query, parameter by parameter, with MoCo's constant m.

        Deliberately not loop.ema_update: its warm-up (d = (1+s)/(10+s) early) lets the key
        encoder follow the query within a few steps, so the queue holds keys of many different
        encoders; the query then only has to be close to *today's* keys to beat the stale ones,
        and every face collapses onto one drifting vector (seen in a CPU run: head cosine 0.97
        between positives, 0.95 between negatives, held-out retrieval at chance).  A slow key
        encoder keeps the queue consistent, which is what the momentum is for.  BatchNorm
        statistics are not blended: the key side always runs in train mode (batch statistics).
        """
        m = self.momentum
        for k_mod, q_mod in ((self.encoder_k, self.encoder_q), (self.head_k, self.head_q)):
            for pk, pq in zip(k_mod.parameters(), q_mod.parameters()):
                pk.mul_(m).add_(pq.detach(), alpha=1.0 - m)

    def forward(self, x_query: torch.Tensor, x_key: torch.Tensor) -> dict:
        """-> {"loss", "logits" (positive in column 0), "q", "k"} and the keys enqueued."""
        q = self.embed_query(x_query)
        k = self.embed_key(x_key)
        loss, logits = info_nce(q, k, self.queue.keys.clone(), self.temperature)
        self.queue.enqueue(k)
        return {"loss": loss, "logits": logits, "q": q, "k": k}
