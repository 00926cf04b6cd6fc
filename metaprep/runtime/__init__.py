"""A model directory -> predictions, with numpy and onnxruntime only: what ships to production.

    from metaprep.runtime import Model
    Model("model/").predict(["a fine film"])

``Model`` and the helpers of the predict and embed stages, from ``metaprep.runtime.model``.
"""

from __future__ import annotations

from metaprep.runtime.model import *  # noqa: F403
from metaprep.runtime.model import __all__ as __all__  # noqa: F401
