"""Every network class that has a weights file, by the name its JSON stores under "class"
(diffusers' `_class_name`): diffbfr.checkpoint.load_network rebuilds any of them from the
config stored beside its tensors, and save_network writes what it reads back. A new network
with a weights file is one line here.

JSON written before files named their class is still read: `class_of` recognises each config
by a field only that class's config has.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from .estimator import EstimatorConfig, EstimatorNet
from .panini_dafi import DAFIBlocks, PaniniConfig, assembly_config
from .panini_dre import DRE, DREConfig
from .panini_encoder import Encoder, EncoderConfig
from .panini_prior import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
from .shufflenet import ShuffleUNet
from .unet import UNet
from .unet_config import UNetConfig


def _own_config(net: nn.Module) -> dict:
    return net.config.to_dict()


def _whole(net: nn.Module) -> nn.Module:
    return net


@dataclass(frozen=True)
class NetworkClass:
    # (stored config dict, **components) -> the network; components are networks it is built
    # on that its file does not hold (a 'dre' estimator's frozen DRE)
    build: Callable[..., nn.Module]
    config: Callable[[nn.Module], dict] = _own_config     # what its JSON stores
    stored: Callable[[nn.Module], nn.Module] = _whole      # the module whose tensors its file holds


NETWORK_CLASSES: dict[str, NetworkClass] = {
    "UNet": NetworkClass(lambda c: UNet(UNetConfig.from_dict(c))),
    "ShuffleUNet": NetworkClass(lambda c: ShuffleUNet(UNetConfig.from_dict(c))),
    "DRE": NetworkClass(lambda c: DRE(DREConfig.from_dict(c))),
    "Generator": NetworkClass(lambda c: Generator(GeneratorConfig.from_dict(c))),
    "Encoder": NetworkClass(lambda c: Encoder(EncoderConfig.from_dict(c))),
    "Discriminator": NetworkClass(lambda c: Discriminator(DiscriminatorConfig.from_dict(c))),
    # dafi.json holds the assembly config: how Panini-Net's four part files fit together
    "DAFIBlocks": NetworkClass(lambda c: DAFIBlocks(PaniniConfig.from_dict(c), DREConfig.from_dict(c["dre"])),
                               config=lambda net: assembly_config(net.config, net.dre_config)),
    # a 'dre' estimator stores its head only: the DRE ships in weights/panini/ (nets/estimator.py)
    "EstimatorNet": NetworkClass(lambda c, body=None: EstimatorNet(EstimatorConfig.from_dict(c), body),
                                 stored=lambda net: net.head if net.config.backbone == "dre" else net),
}

# Before files named their class: a config field that only that class's config has.
_ARCHES = {"unet": "UNet", "shuffle": "ShuffleUNet"}
_ONLY_FIELD = (("backbone", "EstimatorNet"), ("strides", "DRE"), ("dafi_resolutions", "DAFIBlocks"),
               ("z_dim", "Generator"), ("num_ws", "Encoder"), ("mbstd_group", "Discriminator"))


def class_of(payload: dict) -> str:
    """The class name a weights JSON ({"class", "config", "meta"}) stores, or for an older file
    the one its config's fields say; ValueError when neither names a class of NETWORK_CLASSES."""
    config = payload.get("config", {})
    name = payload.get("class")
    if name is None and "arch" in config:
        name = _ARCHES.get(config["arch"])
    if name is None:
        name = next((cls for field, cls in _ONLY_FIELD if field in config), None)
    if name not in NETWORK_CLASSES:
        raise ValueError(f"{name or 'this config'} is not a network class the loader builds "
                         f"(known: {', '.join(NETWORK_CLASSES)})")
    return name
