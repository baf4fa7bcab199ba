import argparse
import json

import pytest
import torch

from diffbfr.train import diffusion_trainer as train
from diffbfr.train import loop, pairs, run_state
from diffbfr.train.__main__ import main as train_cli
from diffbfr.checkpoint import load_network
from diffbfr.train.data import PackDataset
from diffbfr.nets.unet import TINY_OVERRIDES, build

pytestmark = pytest.mark.usefixtures("one_thread")




def run_args(pack, tmp, *extra):
    return ["irm64", "--pack", str(pack), "--tiny", "--batch", "2", "--threads", "1", "--minutes", "5",
            "--log-every", "1", "--val-every", "2", "--warmup", "2", "--export", str(tmp / "w"), *extra]


@pytest.fixture(scope="module")
def runs(pack, tmp_path_factory):
    """Three short real runs shared by the tests below: scratch (3 steps), resumed to 5 steps,
    and a warm start from the first run's exported weights (2 steps)."""
    tmp = tmp_path_factory.mktemp("runs")
    threads = torch.get_num_threads()  # main(--threads 1) sets it; give it back after the module
    scratch_argv = run_args(pack, tmp / "a", "--run-dir", str(tmp / "run"), "--max-steps", "3")
    first = train.main(scratch_argv)
    first_json = json.loads((tmp / "a" / "w" / "irm64.json").read_text())
    first_state = json.loads((tmp / "run" / "state.json").read_text())
    resumed = train.main(run_args(pack, tmp / "b", "--run-dir", str(tmp / "run"), "--max-steps", "5",
                                  "--init-from", "resume"))
    shipped = tmp / "a" / "w" / "irm64.safetensors"
    warm = train.main(run_args(pack, tmp / "c", "--run-dir", str(tmp / "warm"), "--max-steps", "2",
                               "--init-from", str(shipped)))
    yield dict(tmp=tmp, scratch_argv=scratch_argv, first=first, first_json=first_json, first_state=first_state,
               resumed=resumed, warm=warm, shipped=shipped)
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", ["irm64", "irm128", "tem128"])
def test_pairs_have_the_right_shapes(pack, name):
    x0, cond, start = pairs.PairDataset(PackDataset(pack, hflip=False), name, seed=0)[0]
    size = 64 if name == "irm64" else 128
    assert x0.shape == start.shape == (3, size, size) and x0.min() >= -1 and x0.max() <= 1
    assert cond.shape[0] == {"irm64": 3, "irm128": 6, "tem128": 0}[name]
    if name == "irm64":  # stage 1 starts from the LQ face, its condition
        assert torch.equal(start, cond)
    if name == "irm128":  # stage 2 starts from the stage-1 stand-in, the first 3 condition channels
        assert torch.equal(start, cond[:3])


def test_crops_cut_the_same_window_from_target_condition_and_start(pack):
    items = pairs.PairDataset(PackDataset(pack, hflip=False), "irm128", seed=0, crop=48)
    x0, cond, start = items[0]
    assert x0.shape == (3, 48, 48) and cond.shape == (6, 48, 48) and torch.equal(start, cond[:3])
    full = pairs.PairDataset(PackDataset(pack, hflip=False), "irm128", seed=0, crop=48, fixed=True)[0][0]
    assert full.shape == (3, 128, 128)  # validation never crops


def test_lq_start_builds_that_share_of_noisy_inputs_from_the_start_image():
    x0, start, noise = torch.zeros(400, 1, 1, 1), torch.ones(400, 1, 1, 1), torch.zeros(400, 1, 1, 1)
    t = torch.full((400,), 1e-3)
    g = torch.Generator().manual_seed(0)
    assert train.noisy_input(x0, start, t, noise, 0.0, g).abs().max() < 1e-3
    share = (train.noisy_input(x0, start, t, noise, 0.5, g) > 0.5).float().mean().item()
    assert 0.4 < share < 0.6


@pytest.mark.parametrize("arch", ["unet", "shuffle"])
@pytest.mark.parametrize("loss", ["x0-l1", "v-mse"])
def test_tiny_model_overfits_one_batch(arch, loss):
    # two levels at 16 px: the real wiring (FiLM, v-prediction, every loss) in ~1 s
    torch.manual_seed(0)
    model = build("irm64", arch=arch, base_channels=8, channel_mults=(1, 2), blocks_per_level=1, attn_heads=2)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 3, 16, 16, generator=g) * 2 - 1
    cond = x0 + 0.1 * torch.randn(x0.shape, generator=g)
    t = torch.tensor([50.0, 100.0, 200.0, 400.0])
    noise = torch.randn(x0.shape, generator=g)
    args = argparse.Namespace(lq_start=0.0, loss=loss)  # the same noisy inputs every step
    losses = [train.train_step(model, model, opt, (x0, cond, cond), t, noise, args, g).item() for _ in range(40)]
    assert losses[-1] < 0.8 * losses[0], losses  # measured 0.69x or less


def test_trained_timestep_range_is_stored_in_the_config(runs):
    assert runs["first_json"]["config"]["t_max"] == 400.0 and runs["first_json"]["config"]["arch"] == "shuffle"
    net = load_network(runs["shipped"])
    assert net.config.t_max == 400.0 and type(net).__name__ == "ShuffleUNet"


def test_lr_schedule_warms_up_then_decays_by_cosine():
    p = loop.add_run_args(argparse.ArgumentParser(), batch=8, lr=1e-3)
    a = p.parse_args(["--warmup", "10", "--decay-steps", "100", "--lr-min-ratio", "0.1"])
    lrs = [loop.lr_at(s, a) for s in range(200)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)           # linear warm-up
    assert all(x < y for x, y in zip(lrs[:10], lrs[1:10]))
    assert lrs[10] == pytest.approx(1e-3) and lrs[60] == pytest.approx(0.55e-3)      # cosine: half-way
    assert all(x >= y for x, y in zip(lrs[10:], lrs[11:]))
    assert lrs[110] == pytest.approx(1e-4) and lrs[199] == pytest.approx(1e-4)       # then flat at the floor
    flat = p.parse_args(["--warmup", "10"])  # --decay-steps 0: constant after warm-up
    assert loop.lr_at(10, flat) == loop.lr_at(10_000, flat) == pytest.approx(1e-3)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    loop.set_lr(opt, 0.25)
    assert opt.param_groups[0]["lr"] == 0.25


def test_resume_restores_optimizer_and_ema_exactly(tmp_path):
    torch.manual_seed(0)
    model, ema = build("tem128", **TINY_OVERRIDES), build("tem128", **TINY_OVERRIDES)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x0 = torch.rand(2, 3, 16, 16) * 2 - 1
    args = argparse.Namespace(lq_start=0.0, loss="x0-l1")
    train.train_step(model, model, opt, (x0, None, x0), torch.tensor([10.0, 500.0]), torch.randn_like(x0), args,
                     torch.Generator())
    loop.ema_update(ema, model, 0.9, 1)
    gen = torch.Generator().manual_seed(5)
    run_state.save_state(tmp_path, 1, {"model": model, "ema": ema}, {"opt": opt}, {"note": "x"}, {"t": gen})
    expected_draw = torch.rand(3)
    m2, e2 = build("tem128", **TINY_OVERRIDES), build("tem128", **TINY_OVERRIDES)
    o2, g2 = torch.optim.AdamW(m2.parameters(), lr=1e-3), torch.Generator()
    meta = run_state.load_state(tmp_path, {"model": m2, "ema": e2}, {"opt": o2}, {"t": g2})
    assert meta["step"] == 1 and meta["note"] == "x"
    for a, b in zip(list(model.state_dict().values()) + list(ema.state_dict().values()),
                    list(m2.state_dict().values()) + list(e2.state_dict().values())):
        assert torch.equal(a, b)
    s1, s2 = opt.state_dict()["state"], o2.state_dict()["state"]
    assert all(torch.equal(s1[k][n], s2[k][n]) for k in s1 for n in ("exp_avg", "exp_avg_sq", "step"))
    assert torch.equal(torch.rand(3), expected_draw) and torch.equal(g2.get_state(), gen.get_state())
    assert [f.name for f in tmp_path.iterdir() if f.suffix == ".safetensors"] == ["state.000000001.safetensors"]


def test_stopped_and_resumed_run_continues(runs):
    first_state, resumed = runs["first_state"], runs["resumed"]
    assert runs["first"]["steps"] == 3 and first_state["step"] == 3
    assert resumed["steps"] == 5 and resumed["init_from"] == "scratch"   # the lineage is kept
    state = json.loads((runs["tmp"] / "run" / "state.json").read_text())
    assert state["step"] == 5 and [h["step"] for h in state["history"]] == [1, 2, 3, 4, 5]
    assert [v["step"] for v in state["val_history"]] == [2, 3, 4, 5]
    assert (runs["tmp"] / "b" / "w" / "irm64.safetensors").read_bytes() != runs["shipped"].read_bytes()


def test_snapshot_of_a_run_is_what_the_run_exports(runs, tmp_path):
    from safetensors.torch import load_file
    assert train_cli(["snapshot", str(runs["tmp"] / "run"), "--out", str(tmp_path)]) == 0
    snap, exported = (load_file(str(p)) for p in (tmp_path / "irm64.safetensors",
                                                  runs["tmp"] / "b" / "w" / "irm64.safetensors"))
    assert set(snap) == set(exported) and all(torch.equal(snap[k], exported[k]) for k in exported)
    meta = json.loads((tmp_path / "irm64.json").read_text())
    assert meta["meta"]["snapshot"]["step"] == 5 and meta["config"] == runs["first_json"]["config"]
    assert meta["meta"]["args"]["max_steps"] == 5 and "history" not in meta["meta"]   # the command, as an export
    assert load_network(tmp_path / "irm64.safetensors") is not None


def test_export_stores_every_argument_and_the_validation_loss(runs):
    meta = runs["first_json"]["meta"]
    assert meta["args"] == json.loads(json.dumps(vars(train.parse_args(runs["scratch_argv"]))))
    assert {"init_from", "decay_steps", "warmup", "lr_min_ratio", "pack", "tiny"} <= set(meta["args"])
    trained_t = [t for t in train.VAL_T if t <= 400]
    assert meta["val_loss"] > 0 and meta["val_t"] == trained_t
    assert all(f"val_t{int(t)}" in meta for t in trained_t) and "val_t700" not in meta
    assert meta["val_psnr_start"] > 0 and all(f"val_psnr_s{int(s)}" in meta for s, _ in train.VAL_STARTS["irm64"])
    assert meta["val_faces"] == 4 and meta["train_faces"] == 4 and meta["steps"] == 3
    assert runs["first_json"]["config"]["base_channels"] == TINY_OVERRIDES["base_channels"]


def test_minutes_and_steps_accumulate_across_a_warm_start(runs):
    first, warm = runs["first_json"]["meta"], runs["warm"]
    assert warm["init_from"] == str(runs["shipped"])
    assert warm["steps"] == 2 and warm["prior_steps"] == 3 and warm["total_steps"] == 5
    assert warm["cpu_minutes"] > first["cpu_minutes"] > 0 and warm["gpu_minutes"] == 0
    # older shipped files only have train_seconds + device: counted on the device they name
    assert run_state.prior_usage({"train_seconds": 600, "device": "NVIDIA H100"})["gpu_minutes"] == 10
    assert run_state.prior_usage({"gpu_minutes": 2.0, "cpu_minutes": 1.0, "total_steps": 9}) == \
        {"gpu_minutes": 2.0, "cpu_minutes": 1.0, "prior_steps": 9}


def test_warm_start_with_another_config_names_the_differing_keys(pack, runs, tmp_path):
    argv = run_args(pack, tmp_path, "--base-channels", "16", "--init-from", str(runs["shipped"]),
                    "--run-dir", str(tmp_path / "run"))
    with pytest.raises(run_state.InitError, match=r"base_channels: stored 8 vs training 16"):
        train.main(argv)


def test_resume_without_state_fails_clearly(pack, tmp_path, capsys):
    argv = run_args(pack, tmp_path, "--init-from", "resume", "--run-dir", str(tmp_path / "none"))
    assert train_cli(argv) == 2
    assert "--init-from resume: no " in capsys.readouterr().err


def test_scratch_refuses_a_run_dir_in_use_unless_forced(tmp_path):
    p = loop.add_run_args(argparse.ArgumentParser(), batch=8, lr=1e-3)
    lin = torch.nn.Linear(2, 2)
    run_state.save_state(tmp_path, 7, {"model": lin}, {}, {})
    with pytest.raises(run_state.InitError, match=r"step 7.*--init-from resume.*--force"):
        run_state.init_from(p.parse_args(["--init-from", "scratch"]), tmp_path, {"model": lin}, {}, {})
    step, meta = run_state.init_from(p.parse_args(["--init-from", "scratch", "--force"]), tmp_path, {"model": lin}, {}, {})
    assert step == 0 and meta["init_from"] == "scratch" and not (tmp_path / "state.json").exists()
    with pytest.raises(run_state.InitError, match="expected 'scratch', 'resume' or a weights file"):
        run_state.init_from(p.parse_args(["--init-from", "nowhere.safetensors"]), tmp_path / "x", {"model": lin}, {}, {})


def test_validation_is_deterministic_for_fixed_weights(pack):
    torch.manual_seed(0)
    ema, raw = build("irm64", **TINY_OVERRIDES), build("irm64", **TINY_OVERRIDES)
    for net in (ema, raw):  # the output conv starts at zero: give the nets something to say
        torch.nn.init.normal_(net.out_conv.weight, std=0.1)
    _, held = loop.holdout(PackDataset(pack).names)
    sets = [pairs.stacked(pairs.PairDataset(PackDataset(pack, hflip=False), "irm64", train.VAL_SEED, held, fixed=True))
            for _ in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(sets[0], sets[1]))
    args = train.parse_args(["irm64", "--pack", str(pack), "--batch", "3"])
    torch.manual_seed(123)  # the global RNG must not matter
    first = train.val_metrics({"ema": ema, "raw": raw}, sets[0], torch.device("cpu"), args)
    second = train.val_metrics({"ema": ema, "raw": raw}, sets[1], torch.device("cpu"), args)
    assert first == second and first["val_loss"] != first["val_loss_raw"]
    times = [t for t in train.VAL_T if t <= args.t_max]
    assert first["val_loss"] == pytest.approx(sum(first[f"val_t{int(t)}"] for t in times) / len(times))
    assert first["val_psnr_s50"] != first["val_psnr_start"]


def test_holdout_is_a_fixed_disjoint_slice():
    names = [f"{i}_0_0_2017.jpg" for i in range(5000)]
    keep, held = loop.holdout(names)
    assert len(held) == 100 and not set(keep) & set(held) and len(keep) + len(held) == 5000
    assert loop.holdout(list(reversed(names)))[1] == sorted(4999 - i for i in held)  # by name, not position
    assert len(loop.holdout(names[:300])[1]) == 16  # at least 16


def test_cli_lists_the_trainers(capsys):
    assert train_cli([]) == 2
    err = capsys.readouterr().err
    names = ("irm64", "irm128", "tem128", "panini-prior", "panini-restore", "dre", "estimator", "auto-calibration")
    assert all(f"\n  {name} " in err for name in names)
    assert train_cli(["--help"]) == 0 and "auto_calibration.json" in capsys.readouterr().out  # argparse's convention
