"""The built-in synthetic scene: a textured room rendered by vectorised ray casting.

Everything runs on a fresh machine with no download: the textures are the sample photos
that ship inside the scikit-image wheel (an optional dependency, imported lazily). The
output is a 7-Scenes folder (see :mod:`edgepose.synth.layout`), so the reader path is the
same as for real data.

>>> from edgepose.synth import SynthConfig, generate          # doctest: +SKIP
>>> generate("runs/synth", SynthConfig(frames=800, size=(160, 120), seed=0))  # doctest: +SKIP

Modules: ``textures`` (photos and face painters), ``scene`` (geometry and texture atlas),
``trajectories`` (loops and random views), ``render`` (ray casting), ``layout`` (7-Scenes
files), ``contact_sheet``, ``generate`` (the whole data set).
"""
from .generate import SynthConfig, SynthResult, generate
from .layout import DEPTH_INVALID, read_depth_m
from .render import Renderer, intrinsics
from .scene import GENERATOR_VERSION, Scene, build_scene
from .trajectories import SequencePlan, plan_sequences

__all__ = [
    "DEPTH_INVALID", "GENERATOR_VERSION", "Renderer", "Scene", "SequencePlan", "SynthConfig",
    "SynthResult", "build_scene", "generate", "intrinsics", "plan_sequences", "read_depth_m",
]
