"""Train Panini-Net in two stages:
    python -m diffbfr.train panini-prior   --pack packs/gpu128.tar --init-from scratch
    python -m diffbfr.train panini-restore --pack packs/gpu128.tar --init-from scratch \\
        --prior runs/panini-prior/export/generator.safetensors --dre weights/panini/dre.safetensors

panini-prior: the GAN prior alone, unconditional, on the pack's clean faces: StyleGAN2's
non-saturating loss, lazy R1 on reals every 16 D steps (gamma 0.1: StyleGAN2-ADA's heuristic
0.0002 * 128^2 / batch at batch 32), style mixing, an EMA of G (what is exported) whose w_avg
is tracked by G's mapping. Exports generator.safetensors (EMA) and discriminator.safetensors.

panini-restore: the whole PaniniNet on (HQ, LQ) pairs, LQ from degrade.random_degrade:
  L1 (1) + non-saturating adversarial (1e-2, against the prior's discriminator, fine-tuned)
  + discriminator feature matching (0.1), standing in for the paper's VGG perceptual loss
    (no VGG weights offline): like VGG, distances between deep features, at every scale, but of
    a network trained on faces; weight 0.1 keeps pix2pixHD's 10:1 ratio to the adversarial term.
The generator starts from the trained prior, the DRE from the contrastive DRE, and both are
fine-tuned with the encoder and DAFI blocks (--freeze-dre keeps the DRE fixed). Exports the EMA
of the whole net as the method's four parts (nets/panini_dafi.py: split) + the discriminator.

Validation on held-out faces (loop.holdout), fixed seeds. prior: D's mean logit on held-out
reals, on as many training reals (a gap = D memorising) and on EMA samples of fixed latents.
restore: L1, PSNR and mean DAFI prior share per level of degrade.fixed_degrade (val_loss: L1).
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
from functools import partial
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from ..checkpoint import load_into, read_config
from ..frame import FRAME, resize_square, to_batch, to_tensor
from ..nets.panini_dafi import IMAGE, TINY_PANINI, PaniniConfig, PaniniNet, assembly_config, split
from ..nets.panini_dre import DRE, TINY as TINY_DRE, DREConfig
from ..nets.panini_encoder import Encoder, EncoderConfig, TINY_ENCODER
from ..nets.panini_prior import (R1_INTERVAL, TINY_DISCRIMINATOR, TINY_GENERATOR, Discriminator, DiscriminatorConfig,
                            Generator, GeneratorConfig)
from .data import PackDataset
from .degrade import LEVELS, fixed_degrade, random_degrade
from .loop import Trainer, add_run_args, device_name, export, holdout, log, run, set_lr, setup_device
from .run_state import STATE_JSON, InitError
from .panini_eval import prior_val, restore_val, sample_sheet
from .panini_steps import prior_step, projected_prior_step, projected_restore_step, restore_step
from .projected_d import ProjectedConfig, ProjectedDiscriminator, features_of

PRIOR, RESTORE = NAMES = ("panini-prior", "panini-restore")
VAL_SEED = 20240601     # fixed: validation does not move with --seed
VAL_FACES = 64          # at most this many held-out faces (validation runs every --val-every steps)
DEFAULTS = {PRIOR: dict(batch=32, lr=2e-3, warmup=0), RESTORE: dict(batch=16, lr=2e-4, warmup=200)}
BETAS = {PRIOR: (0.0, 0.99), RESTORE: (0.9, 0.99)}  # StyleGAN2 / GFPGAN


def parse_args(argv=None):
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("stage", choices=NAMES)
    stage = pre.parse_known_args(argv)[0].stage
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=NAMES)
    p.add_argument("--pack", required=True, help="training pack (python -m diffbfr.train.data pack)")
    p.add_argument("--tiny", action="store_true", help="tiny networks (tests and dry runs)")
    p.add_argument("--r1-gamma", type=float, default=0.1, help="R1 weight (lazy, every 16 D steps)")
    p.add_argument("--mixing", type=float, default=0.9, help="prior: style-mixing probability")
    p.add_argument("--prior", default=None, help="restore, --init-from scratch: the prior's generator.safetensors "
                   "(its discriminator.safetensors beside it is fine-tuned too), or 'random'")
    p.add_argument("--dre", default="weights/panini/dre.safetensors",
                   help="restore, --init-from scratch: the pretrained DRE, or 'random'")
    p.add_argument("--freeze-dre", action="store_true", help="restore: keep the DRE fixed")
    p.add_argument("--image-dafi", action="store_true",
                   help="restore: one more DAFI block, on the output image (blends G's image with the LQ "
                        "face); a warm start from weights without it starts that block fresh")
    p.add_argument("--w-l1", type=float, default=1.0)
    p.add_argument("--w-adv", type=float, default=1e-2)
    p.add_argument("--w-fm", type=float, default=0.1, help="discriminator feature matching (--disc stylegan)")
    p.add_argument("--disc", choices=("projected", "stylegan"), default="projected",
                   help="projected: small heads on frozen EfficientNet-Lite0 features (projected_d.py); "
                        "stylegan: StyleGAN2's own discriminator, trained from scratch")
    p.add_argument("--w-perc", type=float, default=0.1,
                   help="--disc projected: Lite0 perceptual L1 (normalised per level) in every reconstruction")
    p.add_argument("--ae-weight", type=float, default=0.0,
                   help="prior, --disc projected: the hybrid prior's autoencoder step (an encoder reads a clean "
                        "face, G rebuilds it from W+) at this weight beside the GAN step; 0 = a plain GAN")
    p.add_argument("--w-gan", type=float, default=1.0,
                   help="prior, --disc projected: weight of G's adversarial loss on samples of z (the hybrid "
                        "prior lowers it so that the projected D, which wins early, does not drown the rebuild)")
    p.add_argument("--enc-lr-mul", type=float, default=0.05, help="the hybrid prior's encoder: --lr times this")
    add_run_args(p, **DEFAULTS[stage], minutes=10.0, ema=0.999, export=f"runs/{stage}/export")
    p.set_defaults(val_every=250)
    return p.parse_args(argv)


# ---------------------------------------------------------------- data
class Faces(torch.utils.data.Dataset):
    """(HQ, LQ) from the pack faces in `indices`, CHW in [-1, 1]: a random flip and a fresh
    random_degrade on every pass (prior: LQ is empty)."""

    def __init__(self, pack: PackDataset, indices, seed: int, pairs: bool):
        self.pack, self.indices, self.seed, self.pairs = pack, list(indices), seed, pairs

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, j):
        i = self.indices[j]
        rng = np.random.default_rng([self.seed, i, int(torch.randint(2**31 - 1, (1,)))])
        hq = resize_square(self.pack[i], FRAME)
        if rng.random() < 0.5:
            hq = np.ascontiguousarray(hq[:, ::-1])
        lq = to_tensor(random_degrade(hq, rng))[0] if self.pairs else torch.zeros(0, FRAME, FRAME)
        return to_tensor(hq)[0], lq


def batches(loader):
    while True:  # epochs run into each other; the budget or --max-steps ends training
        yield from loader


# ---------------------------------------------------------------- networks
def warm_discriminator(d: Discriminator, folder: Path) -> str:
    """Fill D from folder/discriminator.safetensors when there is one (config must match)."""
    path = folder / "discriminator.safetensors"
    if not path.is_file():
        return "fresh (no discriminator.safetensors beside the weights)"
    stored, _ = read_config(path)
    stored = type(d.config).from_dict(stored).to_dict()  # fields added since it was saved take defaults
    if stored != d.config.to_dict():
        raise InitError(f"{path} has a different discriminator config: {stored} vs {d.config.to_dict()}")
    load_into(d, path)
    return str(path)


def restore_configs(args, run_dir: Path) -> tuple[PaniniConfig, DREConfig]:
    """The net's shape. The DRE's config comes from what the run starts from: the run's state
    (resume), the warm-start folder's dafi.json (PATH) or the --dre file (scratch)."""
    cfg = TINY_PANINI if args.tiny else PaniniConfig()
    cfg = dataclasses.replace(cfg, freeze_dre=args.freeze_dre, image_dafi=args.image_dafi)
    if args.init_from == "resume" and (run_dir / STATE_JSON).is_file():
        stored = json.loads((run_dir / STATE_JSON).read_text())["config"]["dre"]
    elif args.init_from not in ("scratch", "resume"):
        stored = read_config(args.init_from)[0]["dre"]
    elif args.dre == "random":
        stored = (TINY_DRE if args.tiny else DREConfig()).to_dict()
    else:
        stored = read_config(args.dre)[0]
    return cfg, DREConfig.from_dict(stored)


def build(args, run_dir: Path) -> dict:
    """Modules, optimizers, the config checked on resume / warm start, and what init_from fills."""
    torch.manual_seed(args.seed)
    if args.disc == "projected":
        d = ProjectedDiscriminator(ProjectedConfig(width=16, features="tiny") if args.tiny else ProjectedConfig())
    else:
        d = Discriminator(TINY_DISCRIMINATOR if args.tiny else DiscriminatorConfig())
    c = R1_INTERVAL / (R1_INTERVAL + 1)  # StyleGAN2: lazy R1 -> rescaled Adam for D
    b1, b2 = BETAS[args.stage]
    d_opt = torch.optim.Adam(d.parameters(), lr=args.lr * c, betas=(b1 ** c, b2 ** c))
    if args.stage == PRIOR:
        g = Generator(TINY_GENERATOR if args.tiny else GeneratorConfig())
        g_ema = copy.deepcopy(g).requires_grad_(False).eval()
        modules = {"g": g, "g_ema": g_ema, "d": d}
        enc = None
        if args.ae_weight > 0:  # the hybrid prior's encoder: the restorer's LQ encoder starts from it
            enc = Encoder(dataclasses.replace(TINY_ENCODER, w_dim=g.w_dim) if args.tiny
                          else EncoderConfig.for_generator(g.config))
            modules["enc"] = enc
        groups = [{"params": list(g.parameters())}]
        if enc is not None:  # a plain conv net: StyleGAN's 2e-3 (meant for equalised-lr layers) blows it up
            groups.append({"params": list(enc.parameters()), "lr_mul": args.enc_lr_mul})
        g_opt = torch.optim.Adam(groups, lr=args.lr, betas=(b1, b2))
        return dict(model=g, ema=g_ema, d=d, enc=enc, opt=g_opt, d_opt=d_opt, modules=modules,
                    optimizers={"g_opt": g_opt, "d_opt": d_opt}, config=g.config.to_dict(),
                    warm_start=("g", "g_ema"))
    cfg, dre_cfg = restore_configs(args, run_dir)
    net = PaniniNet(cfg, DRE(dre_cfg))
    if args.init_from == "scratch":
        if args.prior is None:
            raise InitError("panini-restore --init-from scratch needs --prior PATH/generator.safetensors (or random)")
        if args.prior != "random":
            stored, _ = read_config(args.prior)
            if stored != cfg.generator.to_dict():
                raise InitError(f"{args.prior}: generator config {stored} is not the one trained here {cfg.generator}")
            load_into(net.generator, args.prior)
            log(f"prior: {args.prior}; discriminator: {warm_discriminator(d, Path(args.prior).parent)}")
            enc = Path(args.prior).parent / "encoder.safetensors"  # the hybrid prior's: it already reads faces
            if enc.is_file() and read_config(enc)[0] == cfg.encoder.to_dict():
                load_into(net.encoder, enc)
                log(f"LQ encoder starts from the hybrid prior's: {enc}")
        if args.dre != "random":
            load_into(net.dre, args.dre)
            log(f"DRE: {args.dre}")
    net.train()
    ema = copy.deepcopy(net).requires_grad_(False).eval()
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=args.lr, betas=(b1, b2))
    return dict(model=net, ema=ema, d=d, opt=opt, d_opt=d_opt, modules={"net": net, "ema": ema, "d": d},
                optimizers={"opt": opt, "d_opt": d_opt}, config=assembly_config(cfg, dre_cfg), warm_start=())


def warm_start(args, b: dict) -> None:
    """--init-from PATH: init_from checked the config (and filled G, G_ema for the prior); the
    restoration net is four files and D a fifth: filled here from PATH's folder."""
    folder = Path(args.init_from).parent
    if b.get("enc") is not None and (folder / "encoder.safetensors").is_file():
        load_into(b["enc"], folder / "encoder.safetensors")
        log(f"encoder: {folder / 'encoder.safetensors'}")
    if args.stage == RESTORE:
        for name, (module, _) in split(b["model"]).items():
            path = folder / f"{name}.safetensors"
            if name == "dre" and not path.is_file():  # the method's one DRE (--dre), not a copy per folder
                path = Path(args.dre)
            if name == "dafi" and args.image_dafi and not read_config(path)[0].get("image_dafi"):
                fresh = {k for k in module.state_dict() if k.startswith(f"blocks.{IMAGE}.")}
                state = load_file(str(path))
                module.load_state_dict({**{k: v.float() for k, v in state.items()},
                                        **{k: module.state_dict()[k] for k in fresh}})
                log(f"dafi: {path}, and a fresh image DAFI block (the weights predate it)")
                continue
            load_into(module, path)
        b["ema"].load_state_dict(b["model"].state_dict())
        b["model"].train()
    log(f"discriminator: {warm_discriminator(b['d'], folder)}")


def export_all(b: dict, args, meta: dict, out_dir: Path) -> list[Path]:
    """fp16 EMA weights, one file per part (+ the discriminator, for later fine-tuning)."""
    if args.stage == PRIOR:
        parts = {"generator": (b["ema"], b["config"])}
        if b.get("enc") is not None:
            parts["encoder"] = (b["enc"], b["enc"].config.to_dict())
    else:
        parts = {name: (module, cfg) for name, (module, cfg) in split(b["ema"]).items()}
    parts["discriminator"] = (b["d"], b["d"].config.to_dict())
    return [export(m.cpu(), out_dir / f"{name}.safetensors", cfg, args, meta) for name, (m, cfg) in parts.items()]


# ---------------------------------------------------------------- the trainer
class PaniniTrainer(Trainer):
    """panini-prior or panini-restore for loop.run."""

    log_first_step = True

    def __init__(self, args, device: torch.device, run_dir: Path):
        self.args, self.device, self.name = args, device, args.stage
        self.cuda = device.type == "cuda"
        pack = PackDataset(args.pack, hflip=False)  # Faces flips itself
        self.pack = pack
        self.train_idx, val_idx = holdout(pack.names)
        self.val_idx = val_idx[:VAL_FACES]
        self.held_faces = [resize_square(pack[i], FRAME) for i in self.val_idx]
        self.held = to_batch(self.held_faces)
        self.val = {"hq": self.held}
        log(f"{args.pack}: {len(self.train_idx)} training faces, {len(self.val_idx)} held out for validation")
        self.b = b = build(args, run_dir)
        self.modules, self.optimizers, self.config, self.warm_start = (b["modules"], b["optimizers"], b["config"],
                                                                       b["warm_start"])
        self.model, self.ema, self.d, self.opt, self.d_opt = b["model"], b["ema"], b["d"], b["opt"], b["d_opt"]
        self.enc = b.get("enc")
        self.feats = features_of(self.d.config) if args.disc == "projected" else None

    def started(self, step: int, start: dict) -> None:
        args, device, cuda = self.args, self.device, self.cuda
        if args.init_from not in ("scratch", "resume"):
            warm_start(args, self.b)
        for m in (self.model, self.ema, self.d, self.enc, self.feats):
            if m is None:
                continue
            m.to(device)
            if cuda:
                m.to(memory_format=torch.channels_last)
        if args.compile:
            log("--compile is ignored: R1's double backward and DAFI's feature hook do not compile cleanly")
        self.params = sum(p.numel() for p in self.model.parameters())
        val, held = self.val, self.held
        if args.stage == PRIOR:
            val["z"] = torch.randn(VAL_FACES, self.model.z_dim, generator=torch.Generator().manual_seed(VAL_SEED))
            train_real = to_batch([resize_square(self.pack[i], FRAME) for i in self.train_idx[:len(self.val_idx)]])
            self.evaluate = partial(self.with_precision, prior_val, self.ema, self.d, self.feats, self.enc, held,
                                    train_real, val["z"], device, args.batch)
        else:
            val["lqs"] = {lv: to_batch([fixed_degrade(face, lv, VAL_SEED + i)
                                        for face, i in zip(self.held_faces, self.val_idx)]) for lv in LEVELS}
            self.evaluate = partial(self.with_precision, restore_val, {"ema": self.ema, "raw": self.model}, held,
                                    val["lqs"], device, args.batch)
        loader = torch.utils.data.DataLoader(Faces(self.pack, self.train_idx, args.seed, pairs=args.stage == RESTORE),
                                             batch_size=args.batch, shuffle=True, drop_last=True,
                                             num_workers=args.workers, persistent_workers=args.workers > 0,
                                             generator=torch.Generator().manual_seed(args.seed * 100003 + step),
                                             pin_memory=cuda)
        self.data = batches(loader)

    def with_precision(self, fn, *a):
        return fn(*a, bf16=self.bf16)  # loop.run sets bf16 after started()

    def step(self, hq, lq, step: int) -> dict:
        args, bf16 = self.args, self.bf16
        if args.disc == "projected":
            if args.stage == PRIOR:
                return projected_prior_step(self.model, self.enc, self.d, self.feats, self.opt, self.d_opt, hq, args,
                                            bf16)
            return projected_restore_step(self.model, self.d, self.feats, self.opt, self.d_opt, hq, lq, args, bf16)
        if args.stage == PRIOR:
            return prior_step(self.model, self.d, self.opt, self.d_opt, hq, step, args, bf16)
        return restore_step(self.model, self.d, self.opt, self.d_opt, hq, lq, step, args, bf16)

    def speed_probe(self, bf16: bool) -> None:
        """A whole training step on a held-out batch (D and G), with every weight and optimizer
        state put back after: a GAN step's cost is both networks'."""
        hq = self.held[:self.args.batch].to(self.device)
        lq = hq if self.args.stage == RESTORE else torch.zeros(0)
        saved = {k: copy.deepcopy(m.state_dict()) for k, m in self.modules.items()}
        opts = {k: copy.deepcopy(o.state_dict()) for k, o in self.optimizers.items()}
        before, self.bf16 = getattr(self, "bf16", False), bf16
        try:
            self.step(hq, lq, 1)
        finally:
            self.bf16 = before
            for k, m in self.modules.items():
                m.load_state_dict(saved[k])
            for k, o in self.optimizers.items():
                o.load_state_dict(opts[k])

    def describe(self) -> str:
        return (f"{self.args.stage} ({self.args.disc} D"
                + (f", hybrid: autoencoder step x {self.args.ae_weight}" if self.enc is not None else "")
                + f"): {self.params / 1e6:.2f} M params trained "
                f"(+ D {sum(p.numel() for p in self.d.parameters()) / 1e6:.2f} M), "
                f"batch {self.args.batch}, device {device_name(self.device)}, lr {self.args.lr}")

    def train_step(self, step: int, lr: float) -> dict[str, torch.Tensor]:
        args, device = self.args, self.device
        hq, lq = (x.to(device, non_blocking=True) for x in next(self.data))
        if self.cuda:
            hq, lq = (x.contiguous(memory_format=torch.channels_last) for x in (hq, lq))
        set_lr(self.opt, lr)
        set_lr(self.d_opt, lr * (R1_INTERVAL / (R1_INTERVAL + 1) if args.disc == "stylegan" else 1.0))
        return self.step(hq, lq, step)

    def record(self) -> dict:
        return {"model": self.args.stage, "config": self.config, "batch": self.args.batch,
                "val_faces": len(self.val_idx), "train_faces": len(self.train_idx), "pack": str(self.args.pack),
                "params": self.params}

    def export(self, meta: dict) -> str:
        # the shipped EMA weights and a sample sheet
        out_dir = Path(self.args.export)
        sheet = sample_sheet(self.b, self.args.stage == PRIOR, self.val, out_dir / f"{self.args.stage}-samples.png", self.device)
        files = export_all(self.b, self.args, meta, out_dir)
        return f"exported {', '.join(str(f) for f in files)}; samples {sheet}"


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = setup_device(args)
    run_dir = Path(args.run_dir or f"runs/{args.stage}")
    if args.init_from not in ("scratch", "resume") and Path(args.init_from).is_dir():
        args.init_from = str(Path(args.init_from) / f"{'generator' if args.stage == PRIOR else 'dafi'}.safetensors")
    return run(PaniniTrainer(args, device, run_dir), args, device, run_dir)


if __name__ == "__main__":
    main()
