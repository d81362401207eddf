"""edgepose.export: ONNX export, FP16/INT8 passes, TensorRT engine builder, bundle writer."""
