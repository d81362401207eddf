"""INT8 for an export: calibration frames, activation ranges, Q/DQ placement and writing,
sensitivity-guided mixed precision, and Q/DQ graphs from quantization-aware training runs."""
