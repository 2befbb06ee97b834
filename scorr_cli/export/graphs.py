"""The model cut into the three graphs the engine runs, as traceable torch modules (no file I/O).

``keypoints``: driving frames -> keypoint tensors (batch dynamic). ``source``: one source image ->
everything :meth:`MRFA.prepare_source` computes, flattened to named tensors. ``render``: the source
image, those tensors and the already motion-transferred driving keypoints (batch dynamic) -> the
prediction. Motion transfer stays in torch (:mod:`scorr_cli.core.transfer`) for both backends.

:func:`source_tensors` and :func:`prepared_source` are the one mapping between a
:class:`PreparedSource` and named tensors: the render graph is traced through it and the onnxruntime
engine rebuilds its prepared sources with it, so the two cannot disagree on names or order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn

from scorr_cli.core.model import MRFA, PreparedSource
from scorr_cli.core.refiner import SourceFeatures

KEYPOINTS, SOURCE, RENDER = "keypoints", "source", "render"  # graph names (and file stems)
FRAMES, SOURCE_IMAGE, PREDICTION = "frames", "source", "prediction"
SOURCE_KP, DRIVING_KP = "source_", "driving_"  # + a keypoint key (kp, jacobian)
IMAGE_SMALL, REFINER_KP, PYRAMID, STRUCTURE = "image_small", "refiner_kp", "pyramid_", "structure"
TRACE_BATCH = 2
"""Driving frames the graphs are traced with. Not 1: with one frame, ``SourceFeatures.expand`` would skip
its expand and the traced render graph would only run a batch of one."""


def source_tensors(prepared: PreparedSource) -> dict[str, torch.Tensor]:
    """A prepared source as named tensors, in the source graph's output order (the image itself is the
    graph's input, not an output)."""
    f = prepared.features
    out = {SOURCE_KP + k: v for k, v in prepared.kp.items()}
    out[IMAGE_SMALL] = f.image_small
    out[REFINER_KP] = f.kp
    out.update({f"{PYRAMID}{i}": level for i, level in enumerate(f.pyramid)})
    if f.structure is not None:  # None for prior-only models
        out[STRUCTURE] = f.structure
    return out


def prepared_source(image: torch.Tensor, tensors: Mapping[str, torch.Tensor]) -> PreparedSource:
    """The inverse of :func:`source_tensors`."""
    kp = {name[len(SOURCE_KP):]: t for name, t in tensors.items() if name.startswith(SOURCE_KP)}
    levels = sorted((int(name[len(PYRAMID):]), t) for name, t in tensors.items() if name.startswith(PYRAMID))
    features = SourceFeatures(image, tensors[IMAGE_SMALL], tensors[REFINER_KP], [t for _, t in levels],
                              tensors.get(STRUCTURE))
    return PreparedSource(kp, features)


class KeypointsGraph(nn.Module):
    def __init__(self, model: MRFA, keys: list[str]):
        super().__init__()
        self.model, self.keys = model, keys

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, ...]:
        kp = self.model.detect(frames)
        return tuple(kp[k] for k in self.keys)


class SourceGraph(nn.Module):
    def __init__(self, model: MRFA):
        super().__init__()
        self.model = model

    def forward(self, source: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(source_tensors(self.model.prepare_source(source)).values())


class RenderGraph(nn.Module):
    """Positional inputs named by ``input_names``: the source image, the source tensors the renderer
    reads (all but the refiner keypoints, which it derives from the source keypoints), then the driving
    keypoints."""

    def __init__(self, model: MRFA, input_names: list[str], keys: list[str]):
        super().__init__()
        self.model, self.input_names, self.keys = model, input_names, keys

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        named = dict(zip(self.input_names, inputs))
        image = named.pop(SOURCE_IMAGE)
        kp_driving = {k: named.pop(DRIVING_KP + k) for k in self.keys}
        named[REFINER_KP] = self.model.refiner_kp(named[SOURCE_KP + "kp"])
        return self.model.animate(prepared_source(image, named), kp_driving).prediction


@dataclass
class GraphSpec:
    name: str
    module: nn.Module
    inputs: dict[str, torch.Tensor]  # example inputs by name, in the module's order
    outputs: list[str]
    dynamic_axes: dict[str, dict[int, str]]  # tensor name -> {axis: name} (the driving batch)


def model_graphs(model: MRFA, batch: int = TRACE_BATCH, seed: int = 0) -> list[GraphSpec]:
    """The three graphs of ``model`` (eval mode) with example inputs: random frames, ``batch`` of them."""
    g = torch.Generator().manual_seed(seed)
    s = model.cfg.image_size
    frames = torch.rand(batch, 3, s, s, generator=g)
    source = torch.rand(1, 3, s, s, generator=g)
    with torch.no_grad():
        kp = model.detect(frames)
        src = source_tensors(model.prepare_source(source))
    keys = list(kp)
    driving = {DRIVING_KP + k: v for k, v in kp.items()}
    per_frame = {name: {0: "batch"} for name in driving}
    render_inputs = {SOURCE_IMAGE: source, **{k: v for k, v in src.items() if k != REFINER_KP}, **driving}
    return [
        GraphSpec(KEYPOINTS, KeypointsGraph(model, keys), {FRAMES: frames}, keys,
                  {FRAMES: {0: "batch"}, **{k: {0: "batch"} for k in keys}}),
        GraphSpec(SOURCE, SourceGraph(model), {SOURCE_IMAGE: source}, list(src), {}),
        GraphSpec(RENDER, RenderGraph(model, list(render_inputs), keys), render_inputs, [PREDICTION],
                  {**per_frame, PREDICTION: {0: "batch"}}),
    ]
