"""Panini-Net trainers (diffbfr/train/panini_trainer.py) with tiny networks on a synthetic pack: the
steps learn, runs resume where they stopped, the restoration export is a weights folder that
methods.load reads back bit-exactly, and warm starts load exactly what was exported."""
from __future__ import annotations

import argparse
import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from diffbfr import methods
from diffbfr.methods.panini import PARTS
from diffbfr.nets.panini_dafi import TINY_PANINI, PaniniNet
from diffbfr.nets.panini_dre import DRE, TINY as TINY_DRE
from diffbfr.nets.panini_prior import TINY_DISCRIMINATOR, TINY_GENERATOR, Discriminator, Generator, d_logistic_loss
from diffbfr.train import panini_trainer as train
from diffbfr.train import panini_steps as steps
from diffbfr.train.__main__ import TRAINERS, main as train_cli

pytestmark = pytest.mark.usefixtures("one_thread")




def argv(stage, pack, run_dir, export, *extra):
    return [stage, "--pack", str(pack), "--tiny", "--batch", "2", "--threads", "1", "--log-every", "1",
            "--val-every", "0", "--run-dir", str(run_dir), "--export", str(export), *extra]


@pytest.fixture(scope="module")
def runs(pack, tmp_path_factory):
    """prior 2 steps -> resumed to 3; restore from that prior 2 steps -> resumed to 3."""
    tmp = tmp_path_factory.mktemp("runs")
    threads = torch.get_num_threads()
    prior = [train.main(argv("panini-prior", pack, tmp / "prior", tmp / "prior_w", "--max-steps", "2")),
             train.main(argv("panini-prior", pack, tmp / "prior", tmp / "prior_w", "--max-steps", "3",
                             "--init-from", "resume"))]
    gen = tmp / "prior_w" / "generator.safetensors"
    restore = [train.main(argv("panini-restore", pack, tmp / "restore", tmp / "w1", "--max-steps", "2",
                               "--prior", str(gen), "--dre", "random")),
               train.main(argv("panini-restore", pack, tmp / "restore", tmp / "w2", "--max-steps", "3",
                               "--init-from", "resume"))]
    yield dict(tmp=tmp, prior=prior, restore=restore, gen=gen)
    torch.set_num_threads(threads)


def args_ns(**kw):
    base = dict(r1_gamma=0.0, mixing=0.0, w_l1=1.0, w_adv=1e-2, w_fm=0.1)
    return argparse.Namespace(**{**base, **kw})


# ---------------------------------------------------------------- the steps learn
def test_restore_step_overfits_one_batch():
    torch.manual_seed(0)
    net = PaniniNet(TINY_PANINI, DRE(TINY_DRE)).train()
    d = Discriminator(TINY_DISCRIMINATOR)
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=3e-3, betas=(0.9, 0.99))
    d_opt = torch.optim.Adam(d.parameters(), lr=1e-4, betas=(0.9, 0.99))
    g = torch.Generator().manual_seed(0)
    hq = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 128, 128, generator=g) * 2 - 1, 9, 1, 4)
    lq = torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(hq, 8), scale_factor=8, mode="bilinear")
    l1 = [float(steps.restore_step(net, d, opt, d_opt, hq, lq, s + 1, args_ns(), False)["l1"]) for s in range(8)]
    assert l1[-1] < 0.6 * l1[0], l1


def test_discriminator_and_generator_steps_learn():
    torch.manual_seed(0)
    g, d = Generator(TINY_GENERATOR).train(), Discriminator(TINY_DISCRIMINATOR)
    real = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        fake = g(torch.randn(2, g.z_dim), noise_mode="const")
    d_opt = torch.optim.Adam(d.parameters(), lr=5e-3, betas=(0.0, 0.99))
    d_loss = [float(steps.d_step(d, d_opt, real, fake, s + 1, 0.0, False)["d_loss"]) for s in range(8)]
    assert d_loss[-1] < 0.5 * d_loss[0], d_loss
    # G against that D, frozen (D's learning rate 0): the non-saturating loss must fall
    frozen = torch.optim.Adam(d.parameters(), lr=0.0)
    g_opt = torch.optim.Adam(g.parameters(), lr=2e-2, betas=(0.0, 0.99))
    g_loss = [float(steps.prior_step(g, d, g_opt, frozen, real, s + 1, args_ns(), False)["loss"]) for s in range(8)]
    assert min(g_loss[-3:]) < 0.5 * g_loss[0], g_loss
    r1 = steps.d_step(d, d_opt, real, fake, 16, 0.1, False)              # lazy R1 at multiples of 16
    assert "r1" in r1 and float(r1["r1"]) > 0 and "r1" not in steps.d_step(d, d_opt, real, fake, 17, 0.1, False)
    assert d_logistic_loss(torch.zeros(1), torch.zeros(1)).item() == pytest.approx(2 * np.log(2))


# ---------------------------------------------------------------- runs
def test_runs_resume_and_continue_the_step_count(runs):
    tmp = runs["tmp"]
    assert [m["steps"] for m in runs["prior"]] == [2, 3] and [m["steps"] for m in runs["restore"]] == [2, 3]
    assert runs["prior"][1]["init_from"] == "scratch" and runs["restore"][1]["total_steps"] == 3
    for name in ("prior", "restore"):
        state = json.loads((tmp / name / "state.json").read_text())
        assert state["step"] == 3 and state["history"][-1]["step"] == 3
        assert [h["step"] for h in state["val_history"]] == [2, 3]                 # final validation per run
    assert {"val_loss", "val_d_real", "val_d_train", "val_d_fake"} <= set(runs["prior"][1])
    assert {"val_psnr_heavy", "val_prior_light", "val_loss_raw"} <= set(runs["restore"][1])
    assert 0 <= runs["restore"][1]["val_prior_medium"] <= 1
    assert sorted(p.name for p in (tmp / "prior_w").glob("*.safetensors")) == ["discriminator.safetensors",
                                                                                "generator.safetensors"]
    assert (tmp / "w2" / "panini-restore-samples.png").is_file()


def test_restoration_export_loads_bit_exactly_and_warm_starts(runs, pack):
    tmp, folder = runs["tmp"], runs["tmp"] / "w2"
    (folder / "manifest.json").write_text(json.dumps({"method": "panini"}))
    model = methods.load(folder, device="cpu")
    for name in PARTS:
        stored = load_file(str(folder / f"{name}.safetensors"))
        loaded = model.nets[name].state_dict()
        assert set(stored) == set(loaded)
        for k, v in stored.items():
            assert v.dtype != torch.float32 and torch.equal(v, loaded[k].to(v.dtype)), (name, k)
            assert torch.equal(v.to(loaded[k].dtype), loaded[k]), (name, k)
    meta = json.loads((folder / "dafi.json").read_text())["meta"]
    assert meta["steps"] == 3 and meta["args"]["stage"] == "panini-restore"
    # warm start from that folder, zero steps: the export is the same tensors again
    warm = train.main(argv("panini-restore", pack, tmp / "warm", tmp / "w3", "--max-steps", "0",
                           "--init-from", str(folder)))
    assert warm["steps"] == 0 and warm["init_from"] == str(folder / "dafi.safetensors") and warm["prior_steps"] == 3
    for name in (*PARTS, "discriminator"):
        a, b = load_file(str(folder / f"{name}.safetensors")), load_file(str(tmp / "w3" / f"{name}.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_warm_start_adds_an_image_dafi_block_to_weights_without_one(runs, pack):
    tmp, folder = runs["tmp"], runs["tmp"] / "w2"
    grown = train.main(argv("panini-restore", pack, tmp / "grow", tmp / "w4", "--max-steps", "0",
                            "--image-dafi", "--init-from", str(folder)))
    assert grown["steps"] == 0
    old, new = load_file(str(folder / "dafi.safetensors")), load_file(str(tmp / "w4" / "dafi.safetensors"))
    added = sorted(set(new) - set(old))
    assert added and all(k.startswith("blocks.image.") for k in added)
    assert all(torch.equal(old[k], new[k]) for k in old)      # the trained blocks are carried over
    assert json.loads((tmp / "w4" / "dafi.json").read_text())["config"]["image_dafi"] is True


def test_cli_registers_the_trainers_and_explains_a_bad_start(pack, tmp_path, capsys):
    assert {"panini-prior", "panini-restore", "dre"} <= set(TRAINERS)
    rc = train_cli(argv("panini-restore", pack, tmp_path / "r", tmp_path / "w", "--dre", "random"))
    assert rc == 2 and "needs --prior" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "r", ignore_errors=True)
    rc = train_cli(argv("panini-prior", pack, tmp_path / "r", tmp_path / "w", "--init-from", "resume"))
    assert rc == 2 and "no " in capsys.readouterr().err
