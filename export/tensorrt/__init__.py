"""TensorRT for an export: the pure-Python build plan (tested without a GPU), the builder that
applies it (the only code that imports ``tensorrt``), the INT8 calibrator, the device
fingerprint and timing cache, and the per-bundle engine builds.

Inside this package ``import tensorrt`` is absolute (Python 3), so it names NVIDIA's package,
never this folder."""
