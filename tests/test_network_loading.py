"""One way to load a network (diffbfr/checkpoint.py over diffbfr/nets/catalog.py): every class
of the catalog comes back from its file as itself, older files without a class name load by
their config's fields, every shipped weights JSON names its class and loads, and Model.load
takes each network from the file the manifest's `networks` map names."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from diffbfr import methods
from diffbfr.checkpoint import config_path, load_network, save_network
from diffbfr.nets.catalog import NETWORK_CLASSES, class_of
from diffbfr.nets.estimator import EstimatorConfig, EstimatorNet
from diffbfr.nets.panini_dafi import TINY_PANINI, PaniniNet, split
from diffbfr.nets.panini_dre import DRE, TINY as TINY_DRE
from diffbfr.nets.panini_encoder import TINY_ENCODER, Encoder
from diffbfr.nets.panini_prior import TINY_DISCRIMINATOR, TINY_GENERATOR, Discriminator, Generator
from diffbfr.nets.unet import build

ROOT = Path(__file__).resolve().parent.parent
# Filled only by the trainer that built it (train/panini_trainer.py: warm_discriminator); it
# lives in train/ and needs EfficientNet-Lite, so the catalog of nets/ does not hold it.
TRAINING_ONLY = {"ProjectedDiscriminator"}


def tiny_samples() -> dict[str, tuple[nn.Module, dict]]:
    """class name -> (a tiny random instance, the components load_network needs for it)."""
    torch.manual_seed(0)
    dafi = split(PaniniNet(TINY_PANINI, DRE(TINY_DRE)))["dafi"][0]
    dre = DRE(TINY_DRE).eval()
    samples = {
        "UNet": (build("irm64", base_channels=8, channel_mults=(1, 2), attn_heads=2), {}),
        "ShuffleUNet": (build("irm64", arch="shuffle", base_channels=8, channel_mults=(1, 2)), {}),
        "DRE": (DRE(TINY_DRE), {}),
        "Generator": (Generator(TINY_GENERATOR), {}),
        "Encoder": (Encoder(TINY_ENCODER), {}),
        "Discriminator": (Discriminator(TINY_DISCRIMINATOR), {}),
        "DAFIBlocks": (dafi, {}),
        "EstimatorNet": (EstimatorNet(EstimatorConfig(widths=(4, 8), hidden=8)), {}),
        "EstimatorNet on a DRE": (EstimatorNet(EstimatorConfig(backbone="dre", feature_dim=TINY_DRE.out_dim,
                                                               hidden=8), dre), {"body": dre}),
    }
    for net, _ in samples.values():
        with torch.no_grad():   # zero-initialised layers would hide a load that skipped them
            for p in net.parameters():
                p.normal_()
    return samples


def test_every_class_of_the_catalog_has_a_sample_here():
    assert {name.split(" ")[0] for name in tiny_samples()} == set(NETWORK_CLASSES)


@pytest.mark.parametrize("legacy", [False, True], ids=["class named", "older file, no class"])
@pytest.mark.parametrize("name", list(tiny_samples()))
def test_a_saved_network_comes_back_as_itself(tmp_path, name, legacy):
    net, components = tiny_samples()[name]
    path = save_network(net, tmp_path / "net.safetensors", {"note": "test"}, dtype=None)
    payload = json.loads(config_path(path).read_text())
    assert payload["class"] == type(net).__name__ and payload["meta"] == {"note": "test"}
    if legacy:
        del payload["class"]
        config_path(path).write_text(json.dumps(payload))
    back = load_network(path, **components)
    assert type(back) is type(net) and not back.training
    assert back.config == net.config
    want, got = net.state_dict(), back.state_dict()
    assert set(got) == set(want) and all(torch.equal(want[k], got[k]) for k in want)


def test_a_file_of_no_known_class_is_refused(tmp_path):
    with pytest.raises(ValueError, match="Nonesuch is not a network class"):
        class_of({"class": "Nonesuch", "config": {}})
    with pytest.raises(ValueError, match="this config is not a network class"):
        class_of({"config": {"width": 3}})
    path = save_network(DRE(TINY_DRE), tmp_path / "dre.safetensors")
    config_path(path).write_text(json.dumps({"class": "ProjectedDiscriminator", "config": {}, "meta": {}}))
    with pytest.raises(ValueError, match="ProjectedDiscriminator is not a network class"):
        load_network(path)


SHIPPED = sorted(p for p in (ROOT / "weights").rglob("*.json") if p.with_suffix(".safetensors").is_file())


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_weights_file_names_its_class_and_loads(path):
    payload = json.loads(path.read_text())
    assert payload["class"] in set(NETWORK_CLASSES) | TRAINING_ONLY
    if payload["class"] in TRAINING_ONLY:
        pytest.skip(f"{payload['class']} is filled by its trainer only")
    components = {}
    if payload["config"].get("backbone") == "dre":
        components["body"] = load_network(ROOT / "weights" / "panini" / "dre.safetensors")
    assert type(load_network(path.with_suffix(".safetensors"), **components)).__name__ == payload["class"]


def test_model_load_takes_each_network_from_the_file_the_manifest_names(tmp_path):
    tiny = methods.tiny("diffbfr")
    files = {name: f"stage_{k}.safetensors" for k, name in enumerate(tiny.method.networks)}
    for name, file in files.items():
        save_network(tiny.nets[name], tmp_path / file, dtype=None)
    (tmp_path / "manifest.json").write_text(json.dumps({"method": "diffbfr", "networks": files}))
    model = methods.load(tmp_path, device="cpu")
    for name, net in tiny.nets.items():
        assert all(torch.equal(v, model.nets[name].state_dict()[k]) for k, v in net.state_dict().items())
    (tmp_path / "manifest.json").write_text(json.dumps({"method": "diffbfr", "networks": {"unet": "a.safetensors"}}))
    with pytest.raises(ValueError, match="the manifest's networks"):
        methods.load(tmp_path, device="cpu")
