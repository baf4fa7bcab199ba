"""What a restoration method is: data (its stages, what each reads, which settings each reads,
its networks) plus stage functions. The photo path, the cache, the CLI, the app and the
benches are written once against this and work for every method in the registry.

A stage function has one signature:

    run(model, inputs, settings, seeds, callback) -> images, or (images, infos)

`images` is a list of uint8 HxWx3 images, one per face; `infos`, when given, one small dict
per face of what the stage wants to show besides its image (e.g. Panini-Net's mean DAFI masks):
the page shows it in words (`Stage.describe`) and, where the stage has one, a chart (`Stage.plot`).

`inputs` maps each name in `Stage.reads` ("lq" = the aligned 128 px input face, or an earlier
stage) to one image per face of the batch; `seeds[k]` seeds face k's randomness (so a face's
result does not depend on which faces share its batch); `callback` is the samplers'
per-step hook ({"x", "i", "t", "denoised"}) or None.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..checkpoint import load_network, read_config
from ..settings import knob_of

INPUT = "lq"          # the name under which a stage reads the aligned input face
MANIFEST = "manifest.json"

StageFn = Callable[["Model", dict, Any, Sequence[int], Callable | None], list]


@dataclass(frozen=True)
class Stage:
    name: str                       # key of its output, e.g. "irm64"
    label: str                      # what people read, e.g. "IRM 64"
    reads: tuple[str, ...]          # INPUT or earlier stage names
    fields: tuple[str, ...]         # the settings fields this stage reads
    run: StageFn
    nfe: Callable[[Any], int]       # network evaluations at given settings (0: stage skipped)
    help: str = ""
    describe: Callable[[dict], str] | None = None   # a face's info from `run` -> words for people
    # The same infos as a picture: words compare badly across many numbers and faces (Panini-Net's
    # prior share at six levels per face). plot(infos of every face that has one, each with
    # "face": its number on the page) -> one small uint8 HxWx3 RGB chart, or None: nothing to
    # draw. The page shows it beside the words, captioned "<label>: <plot_label>"; the method
    # owns the drawing (e.g. methods/panini_plot.py).
    plot: Callable[[list[dict]], np.ndarray | None] | None = None
    plot_label: str = ""
    # What one network evaluation costs for one face at settings s, in seconds on the 2-core CPU
    # (bench.speed): the app bounds a request's work by it (diffbfr/work_budget.py). None: not
    # measured (work_budget.UNMEASURED_EVAL_S).
    eval_s: Callable[[Any], float] | None = None
    counts: tuple[str, ...] = ()    # integer settings the work grows with (steps, samples): what a budget lowers


@dataclass(frozen=True)
class SimpleControl:
    """One plain-words slider (0-100) that moves several settings coherently, for people who
    have never heard of diffusion; the expert knobs stay available beside it."""
    label: str                                   # e.g. "Fidelity ↔ detail"
    help: str
    default: float                               # the position that gives the settings' defaults
    # apply(position 0-100, limits=None) -> {setting: value}, each inside `limits` when given
    # (Model.knob_limits(): the start steps the loaded networks were trained for)
    apply: Callable[..., dict]


@dataclass(frozen=True)
class Method:
    name: str                       # registry key and weights sub-folder, e.g. "diffbfr"
    title: str                      # "DiffBFR"
    settings: type                  # frozen dataclass declared with settings.knob
    stages: tuple[Stage, ...]
    networks: tuple[str, ...]       # their files: the weights folder's manifest, "networks" (Model.load)
    tiny_networks: Callable[[int], dict[str, nn.Module]]  # seed -> random tiny networks
    description: str = ""
    speed_baselines: dict = field(default_factory=dict)   # name -> settings overrides (bench.speed)
    simple: SimpleControl | None = None
    # setting -> the network that reads it as a diffusion timestep: it must stay within the
    # timesteps that network was trained at (its config's t_max; Model.knob_limits())
    timestep_networks: dict = field(default_factory=dict)
    # nets -> one module made of them (their tensors, not copies), for a method whose stage runs
    # its networks as one (Panini-Net); the Model keeps it (Model.assembled)
    assemble: Callable[[dict[str, nn.Module]], nn.Module] | None = None
    # The settings field that seeds face k's randomness (`seeds` of a stage function; the photo
    # path, the uncertainty map). None: the method draws nothing random, every face is seeded 0.
    seed: str | None = None
    # The settings the uncertainty map runs at (diffbfr/uncertainty.py: stochastic()): what makes
    # single draws differ step by step turned on, any average of several draws cut to one draw
    # (a mean hides the disagreement the map measures). Empty: the settings as they are.
    uncertainty_settings: dict = field(default_factory=dict)
    # The page's words for the settings Auto chooses per face (its calibration's fields), as
    # (all of them, one of them), and its advice when a result drifted from the person
    auto_words: tuple[str, str] = ("settings", "a setting")
    drift_hint: str = ""

    def __post_init__(self):
        known = {INPUT}
        fields = set(self.settings.__dataclass_fields__)
        for st in self.stages:
            if not set(st.reads) <= known:
                raise ValueError(f"{self.name}: stage {st.name} reads {st.reads}, not all computed before it")
            if not set(st.fields) <= fields:
                raise ValueError(f"{self.name}: stage {st.name} reads unknown settings {set(st.fields) - fields}")
            if not set(st.counts) <= set(st.fields):
                raise ValueError(f"{self.name}: stage {st.name} counts {set(st.counts) - set(st.fields)}, "
                                 "not settings it reads")
            known.add(st.name)
        for name, net in self.timestep_networks.items():
            if name not in fields or net not in self.networks:
                raise ValueError(f"{self.name}: timestep_networks maps {name!r} -> {net!r}: unknown setting or network")
        unknown = {self.seed} - fields - {None} | set(self.uncertainty_settings) - fields
        if unknown:
            raise ValueError(f"{self.name}: seed / uncertainty_settings name unknown settings {sorted(unknown)}")

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(st.name for st in self.stages)

    @property
    def final(self) -> str:
        return self.stages[-1].name

    @property
    def labels(self) -> dict[str, str]:
        return {INPUT: "LQ", **{st.name: st.label for st in self.stages}}

    def stage(self, name: str) -> Stage:
        for st in self.stages:
            if st.name == name:
                return st
        raise KeyError(f"{self.name} has no stage {name!r}")

    def upstream(self, name: str) -> list[Stage]:
        """The stage and every stage it reads from, transitively, in execution order."""
        need, todo = set(), [name]
        while todo:
            n = todo.pop()
            if n != INPUT and n not in need:
                need.add(n)
                todo.extend(self.stage(n).reads)
        return [st for st in self.stages if st.name in need]

    def key_fields(self, name: str) -> tuple[str, ...]:
        """The settings a stage's output depends on: its own and those of its upstream stages."""
        out: list[str] = []
        for st in self.upstream(name):
            out += [f for f in st.fields if f not in out]
        return tuple(out)

    def seed_of(self, s) -> int:
        """The seed settings `s` give a face (0 for a method that draws nothing random)."""
        return int(getattr(s, self.seed)) if self.seed else 0

    def nfe(self, s) -> dict[str, int]:
        return {st.name: int(st.nfe(s)) for st in self.stages}


def read_manifest(weights_dir: str | Path) -> dict:
    path = Path(weights_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{weights_dir} has no {MANIFEST}: not a diffbfr weights folder")
    return json.loads(path.read_text())


def network_files(manifest: dict, method: Method) -> dict[str, str]:
    """network -> its file in the weights folder, from the manifest's `networks` map, which must
    name exactly the method's networks; a manifest without one means <network>.safetensors."""
    files = manifest.get("networks", {n: f"{n}.safetensors" for n in method.networks})
    if set(files) != set(method.networks):
        raise ValueError(f"the manifest's networks {sorted(files)} are not {method.title}'s {sorted(method.networks)}")
    return {n: files[n] for n in method.networks}


class Model:
    """A method with its networks on a device: what stage functions receive as `model`."""

    def __init__(self, method: Method, nets: dict[str, nn.Module], device: str | torch.device | None = None,
                 card: dict | None = None, label: str = ""):
        self.method = method
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.nets = {k: v.to(self.device).eval() for k, v in nets.items()}
        # Half precision only where it is fast: CUDA. CPU fp16 convolutions are slow.
        self.autocast = self.device.type == "cuda"
        # Faces per network call. On the 2-core CPU a batch of 4 128 px faces runs ~1.3x faster
        # per face than one at a time (bench.speed --faces 4); beyond that memory grows for
        # little gain. A GPU wants larger batches.
        self.max_batch = 32 if self.device.type == "cuda" else 4
        self.card = card or {}       # the weights folder's manifest (quality verdict, licence)
        self.label = label           # e.g. "random tiny networks", shown to the user
        self._assembled: tuple[tuple, nn.Module] | None = None

    def assembled(self) -> nn.Module:
        """The method's networks as one module (Method.assemble), built on first use and again
        only if `nets` were swapped since."""
        if self.method.assemble is None:
            raise TypeError(f"{self.method.title} runs its networks separately: nothing to assemble")
        parts = tuple(self.nets[name] for name in self.method.networks)
        if self._assembled is None or any(a is not b for a, b in zip(self._assembled[0], parts)):
            self._assembled = (parts, self.method.assemble(self.nets))
        return self._assembled[1]

    @property
    def name(self) -> str:
        return self.method.name

    def knob_limits(self) -> dict[str, tuple[float, float]]:
        """setting -> (lo, hi) where this model's networks narrow the setting's declared range:
        a start step may not exceed the largest timestep its network was trained at
        (`config.t_max`; Method.timestep_networks; a loaded network whose file states none is
        bounded by its setting's slider end, `ui_hi`: see `load`). Every surface (validation, the page's
        sliders, the fidelity slider, Auto, the CLI) reads its ranges through this."""
        out = {}
        for name, net in self.method.timestep_networks.items():
            k = knob_of(self.method.settings, name)
            t_max = getattr(getattr(self.nets.get(net), "config", None), "t_max", None)
            hi = float(k.hi) if t_max is None else min(float(k.hi), float(t_max))
            out[name] = (float(k.lo), max(float(k.lo), hi))
        return out

    @classmethod
    def load(cls, method: Method, weights_dir: str | Path, device: str | torch.device | None = None) -> "Model":
        """Load `method`'s networks from a weights folder (methods.load() picks the method
        from the folder's manifest): each from the file the manifest's `networks` map names
        (<network>.safetensors where the manifest has no map), by checkpoint.load_network."""
        weights_dir = Path(weights_dir)
        manifest = read_manifest(weights_dir)
        if manifest.get("method") != method.name:
            raise ValueError(f"{weights_dir} holds weights for {manifest.get('method')!r}, not {method.name!r}")
        files = {n: weights_dir / f for n, f in network_files(manifest, method).items()}
        missing = [str(path) for path in files.values() if not path.is_file()]
        if missing:
            raise FileNotFoundError(f"{method.title} is not trained yet: missing " + ", ".join(missing))
        nets = {n: load_network(path) for n, path in files.items()}
        for name, net in method.timestep_networks.items():
            # A network whose file does not state the timesteps it was trained at (the TEM
            # placeholder) gets its setting's slider end instead of the config class's 1000:
            # for TEM 100, the range the placeholder was trained for (the trainer's default t_max
            # for tem128); {"tem_t": 1000} replaced the face with a smear.
            config = getattr(nets[net], "config", None)
            if config is not None and "t_max" not in read_config(files[net])[0]:
                config.t_max = float(knob_of(method.settings, name).ui_hi)
        return cls(method, nets, device, card=manifest)

    @classmethod
    def tiny(cls, method: Method, seed: int = 0, device: str | torch.device | None = "cpu") -> "Model":
        """Random tiny networks with the real wiring: for tests and UI work without weights."""
        return cls(method, method.tiny_networks(seed), device,
                   label="random tiny networks: the output is noise, for trying the wiring only")

    def run_stage(self, name: str, inputs: dict[str, list[np.ndarray]], settings,
                  seeds: Sequence[int], callback: Callable | None = None):
        """One stage on a batch of faces: images, or (images, infos) (see the module doc)."""
        with torch.inference_mode():
            return self.method.stage(name).run(self, inputs, settings, list(seeds), callback)
