"""A run -> a model directory -> predictions: export, the ONNX graph, parity, quantization,
Triton, the model directory and the torch-free runtime. Importing this package loads nothing."""
