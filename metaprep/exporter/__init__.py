"""A trained run -> a model directory (torch, onnx): the graphs, the parity gate, quantization,
the text graph and the Triton repository writers. Importing this package loads nothing."""
