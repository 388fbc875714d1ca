"""Learned depth through the engine layer: which preprocessing each model wants and which
engine shape a photo needs. Which model ``--depth auto`` runs is ``engines.resolve_auto``'s
answer for the task "depth".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engines import load_engine
from ..engines.registry import ModelSpec, get_spec
from .learned import DEPTH_ANYTHING_PREPROCESS, MIDAS_PREPROCESS, network_size, run_depth_model


@dataclass(frozen=True)
class EngineOptions:
    """How learned models run: runtime/precision as ``photo3d_fast.engines`` takes them;
    weights: a file for the chosen depth model instead of the cache; fetch: download
    missing weights (False: ``--offline``, as are PHOTO3D_OFFLINE=1 and HF_HUB_OFFLINE=1)."""

    runtime: str = "auto"
    precision: str = "auto"
    device: str = "auto"
    weights: str | None = None
    fetch: bool = True


#: Longest network input side. The reference resize fixes the *short* side (518 px), so a
#: 10:1 panorama would become a 518 x 5180 input (49x the tokens of a square one, and an
#: attention matrix 2,400x larger); past this the whole input is scaled down instead.
MAX_NETWORK_SIDE = 2044


def preprocess_for(spec: ModelSpec, height: int | None = None, width: int | None = None):
    """The reference preprocessing of a depth model (``learned.DepthPreprocess``); for a
    photo of height x width pixels, with its target size lowered where the reference size
    would exceed ``MAX_NETWORK_SIDE`` on the long side."""
    import dataclasses


    prep = MIDAS_PREPROCESS if spec.name.startswith("midas") else DEPTH_ANYTHING_PREPROCESS
    if height is None or width is None:
        return prep
    while max(network_size(height, width, prep)) > MAX_NETWORK_SIDE and prep.input_size > prep.multiple:
        prep = dataclasses.replace(prep, input_size=max(prep.multiple, prep.input_size - prep.multiple))
    return prep


def network_input_shape(spec: ModelSpec, height: int, width: int) -> tuple[int, int, int, int]:
    """(1, 3, h, w): the engine input for a photo of height x width pixels."""

    h, w = network_size(height, width, preprocess_for(spec, height, width))
    return (1, 3, h, w)


def estimate_with_model(image: np.ndarray, name: str, options: EngineOptions = EngineOptions(),
                        quiet: bool = False) -> tuple[np.ndarray, str]:
    """Disparity (H, W) float32 in [0, 1] (1 = nearest) of ``image`` ((H, W, 3) uint8) from
    the learned model ``name``, and a note naming model, runtime and licence."""

    spec = get_spec(name, task="depth")
    shape = network_input_shape(spec, *image.shape[:2])
    engine = load_engine(spec.name, shape, runtime=options.runtime, precision=options.precision,
                         device=options.device, weights=Path(options.weights) if options.weights else None,
                         fetch=options.fetch, quiet=quiet)
    disparity = run_depth_model(image, engine, preprocess_for(spec, *image.shape[:2]), device=engine.device)
    return disparity, f"{spec.name} on {engine.runtime} {engine.precision} (weights licence {spec.licence})"
