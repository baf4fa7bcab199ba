"""loop.run owns the loop: a trainer's step returns its losses, and the loop averages, logs,
validates, saves and records them (a toy trainer here, so only the loop is under test)."""
import argparse
import json

import torch

from diffbfr.train import loop
from diffbfr.train.meters import LossMeans


def test_losses_are_averaged_over_the_steps_that_returned_them():
    means = LossMeans()
    assert not means
    means.add({"loss": torch.tensor(1.0), "r1": torch.tensor(4.0)})   # r1: a lazy term, not every step
    means.add({"loss": torch.tensor(3.0)})
    assert means and means.take() == {"loss": 2.0, "r1": 4.0}
    assert not means and means.take() == {}


class ToyTrainer(loop.Trainer):
    """Fits one weight; its step's loss is the step number, so every mean is known."""

    name, unit, log_first_step = "toy", "pairs", False

    def __init__(self, args, export_to):
        self.args, self.export_to, self.lrs = args, export_to, []
        self.model = torch.nn.Linear(1, 1)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.0)
        self.modules, self.optimizers, self.config = {"model": self.model}, {"opt": self.opt}, {"name": "toy"}

    def learning_rate(self, step, args, clock):
        return 0.5 ** step   # a trainer's own schedule

    def train_step(self, step, lr):
        self.lrs.append(lr)
        return {"loss": torch.tensor(float(step + 1)), **({"odd": torch.tensor(1.0)} if step % 2 else {})}

    def evaluate(self):
        return {"val_loss": float(len(self.lrs))}

    def record(self):
        return {"model": "toy", "config": self.config}

    def export(self, meta):
        self.export_to.write_text(json.dumps(meta))
        return "exported"


def test_run_logs_the_mean_losses_validates_records_and_exports(tmp_path, capsys):
    args = loop.add_run_args(argparse.ArgumentParser(), batch=4, lr=1.0).parse_args(
        ["--max-steps", "5", "--log-every", "2", "--val-every", "4", "--device", "cpu"])
    toy = ToyTrainer(args, tmp_path / "toy.json")
    meta = loop.run(toy, args, torch.device("cpu"), tmp_path / "run")
    assert toy.lrs == [1.0, 0.5, 0.25, 0.125, 0.0625]
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert [(h["step"], h["loss"], h.get("odd")) for h in state["history"]] == [(2, 1.5, 1.0), (4, 3.5, 1.0)]
    assert {"lr", "pairs_per_s"} <= set(state["history"][0])
    assert meta["train"] == {"loss": 5.0} and meta["steps"] == 5 and "pairs_per_s_this_run" in meta
    assert [v["step"] for v in meta["val_history"]] == [4, 5] and meta["val_loss"] == 5.0
    assert json.loads((tmp_path / "toy.json").read_text())["lr_last"] == 0.0625
    out = capsys.readouterr().out
    assert "step 2 loss 1.5000 odd 1.0000 lr 5.00e-01" in out and " pairs/s " in out and "step 4 val_loss 4.0000" in out
