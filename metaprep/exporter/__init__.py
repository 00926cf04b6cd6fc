"""A trained run -> a model directory (torch, onnx); the runtime (metaprep.runtime) serves it.

    run.py         export_run: read the run, check, commit the directory (and a Triton entry)
    build.py       what the directory holds: the graphs, their gate, variants, files, manifest
    bake.py        a torch model -> GraphSpec (graphspec.py): numpy weights, word-only parts baked
    onnx_graph.py  GraphSpec -> ONNX (onnx_front.py the front end, onnx_builder.py the writer,
                   onnx_data.py the external data file)
    parity.py      torch against onnxruntime, and the gate     quantize.py   the int8 variant
    textgraph.py   the text and serve graphs (texts -> ids, texts -> outputs)
    triton.py      a Triton onnxruntime-backend entry; triton_python.py the text-in python-backend
                   entry (`metaprep triton`), modelcopy.py their checked copies
    triton_local.py  a real tritonserver on loopback, for the tests and local trials

Importing this package loads nothing; each module imports torch and onnx where it needs them.
"""
