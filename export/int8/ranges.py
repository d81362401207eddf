"""Activation ranges for INT8 post-training quantization, with ONNX Runtime's calibrators.

:func:`activation_amax` runs ONNX Runtime's ``MinMaxCalibrater`` / ``EntropyCalibrater`` /
``PercentileCalibrater`` on the tensors the placement quantizes (only those: the entropy search
costs per tensor) and returns one symmetric ``amax`` per tensor.

Why entropy used to equal MinMax to 4 digits: ``quantize_static`` builds its entropy
calibrator with ONNX Runtime's defaults, ``num_bins=128`` and ``num_quantized_bins=128``, and
forwards no option that changes them (its ``extra_options`` only pass CalibTensorRangeSymmetric,
CalibMovingAverage(Constant), CalibMaxIntermediateOutputs and CalibPercentile). With as many
histogram bins as quantized bins, ``get_entropy_threshold`` has exactly one candidate, the whole
histogram, whose edge is the tensor's max |x|: MinMax. Here the calibrator is built directly with
:data:`ENTROPY_BINS` histogram bins over ``[-max|x|, max|x|]`` and :data:`ENTROPY_QUANTIZED_BINS`
quantized bins (int8's 255 levels), so the KL search has ~900 thresholds to choose from, as
TensorRT's entropy calibrator has (2048 bins of |x|, 128 levels of the positive half).

Measured once it really differs (``benchmarks/results/int8_qat.md``): on our pose regressors
entropy is far worse than MinMax (median drift 0.53 m vs 0.031 m on dino, 2.19 m vs 0.061 m on
the synthetic room). The KL criterion only compares histogram shapes: it happily clips the
ReLU6 saturation spike and long tails, whatever the clipped values' distance, which a classifier
tolerates and a regressor does not. MinMax stays the default; TensorRT 8.x's
``IInt8EntropyCalibrator2`` (``--int8-engine calibrator``) uses the same criterion. The entropy
search is also slow in ONNX Runtime's pure-Python loop (minutes per graph on a loaded 2-core CPU).
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Dict, Iterable, Union

import numpy as np

from edgepose.errors import ConfigError, EdgePoseError, require

METHODS = ("minmax", "entropy", "percentile")
DEFAULT_PERCENTILE = 99.99
ENTROPY_BINS = 2048
ENTROPY_QUANTIZED_BINS = 255


def _calibrator(method: str, model_path: str, augmented: str, percentile: float):
    cal = require("onnxruntime.quantization.calibrate", "INT8 calibration", "pip install onnxruntime")
    if method == "minmax":
        return cal.MinMaxCalibrater(model_path, None, augmented, symmetric=True)
    if method == "entropy":
        return cal.EntropyCalibrater(model_path, None, augmented, symmetric=True, num_bins=ENTROPY_BINS,
                                     num_quantized_bins=ENTROPY_QUANTIZED_BINS)
    if method == "percentile":
        return cal.PercentileCalibrater(model_path, None, augmented, symmetric=True, num_bins=ENTROPY_BINS,
                                        percentile=float(percentile))
    raise ConfigError(f"calibration method must be one of {METHODS}, not {method!r}")


def activation_amax(onnx_path: Union[str, Path], tensors: Iterable[str], reader, method: str = "minmax",
                    percentile: float = DEFAULT_PERCENTILE) -> Dict[str, float]:
    """``{tensor: amax}`` over the frames of ``reader`` (an ORT ``CalibrationDataReader``).

    ``onnx_path`` should carry shape information (``quant_pre_process`` or
    ``onnx.shape_inference``); tensors without a float type there cannot be calibrated and raise.
    """
    onnx = require("onnx", "INT8 calibration", "pip install onnx")
    wanted = list(dict.fromkeys(tensors))
    model = onnx.shape_inference.infer_shapes(onnx.load(str(onnx_path)))
    with tempfile.TemporaryDirectory(prefix="edgepose-calib-") as tmp:
        src = Path(tmp) / "shaped.onnx"
        onnx.save(model, str(src))
        calib = _calibrator(method, str(src), str(Path(tmp) / "augmented.onnx"), percentile)
        value_infos = {vi.name: vi for vi in model.graph.value_info}
        value_infos.update({v.name: v for v in list(model.graph.input) + list(model.graph.output)})
        lost = [t for t in wanted if t not in value_infos]
        if lost:
            raise EdgePoseError(f"cannot calibrate {len(lost)} tensor(s) without shape information, e.g. {lost[:3]}",
                                hint="the graph failed shape inference; re-export it with edgepose-export")
        calib.select_tensors_to_calibrate = lambda _m: (set(wanted), value_infos)
        calib.augment_graph()
        calib.create_inference_session()
        try:
            calib.collect_data(reader)
            data = calib.compute_data()
        except ValueError as exc:  # e.g. numpy "Too many bins for data range" on a constant tensor
            raise EdgePoseError(f"{method} calibration of {onnx_path} failed: {exc}",
                                hint="a tensor is constant on these frames (a saturated or dead layer); "
                                     "try --calib-method minmax, or more varied calibration frames") from None
        del calib
    out = {}
    for t in wanted:
        lo, hi = data[t].range_value
        out[t] = float(max(abs(float(np.asarray(lo).max())), abs(float(np.asarray(hi).max()))))
    return out
