"""The oracle for bundles made by ``make_synthetic_bundle`` (tests/synthetic_bundles.py): the same
network computed with scipy from its description, never from the code that built the graph.
``tests/`` is on ``sys.path`` (its conftest.py lives there), so any test can
``from synthetic_oracle import synthetic_forward``."""
from __future__ import annotations

import numpy as np
import pytest

MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])  # ImageNet's, on RGB/255


def synthetic_forward(params, images):
    """The oracle: the synthetic network of ``make_synthetic_bundle`` written from its
    description (normalise; 3x3 stride-2 pad-1 conv + ReLU per layer; global average; three
    linear heads: position de-normalised, rotation made unit with w >= 0, sigma softplus in
    [m, rad]), with scipy's 2-D correlation, not the code that built the graph."""
    signal = pytest.importorskip("scipy.signal", reason="the oracle of the synthetic network uses scipy")
    x = (images.astype(np.float64) / 255 - MEAN) / STD  # (N, H, W, 3)
    x = x.transpose(0, 3, 1, 2)
    i = 0
    while f"conv{i}.w" in params:
        w, b = params[f"conv{i}.w"].astype(np.float64), params[f"conv{i}.b"].astype(np.float64)
        out = np.zeros((x.shape[0], w.shape[0], x.shape[2], x.shape[3]))
        for n in range(x.shape[0]):
            for o in range(w.shape[0]):
                out[n, o] = sum(signal.correlate2d(x[n, c], w[o, c], mode="same") for c in range(w.shape[1]))
        x = np.maximum(out[:, :, ::2, ::2] + b[None, :, None, None], 0)  # "same" then every 2nd = stride 2, pad 1
        i += 1
    f = x.mean(axis=(2, 3))
    scale, mean = float(params["position_scale"]), params["position_mean"].astype(np.float64)
    pos = (f @ params["pos.w"] + params["pos.b"]) * scale + mean
    q = f @ params["rot.w"] + params["rot.b"]
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    q = q * np.where(q[:, :1] < 0, -1.0, 1.0)
    sig = np.logaddexp(0, f @ params["sig.w"] + params["sig.b"]) * np.array([scale, 1.0])
    return pos, q, sig
