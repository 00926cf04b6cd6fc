"""Suite-wide settings."""

from __future__ import annotations

import os

# Tiny test models gain nothing from intra-op threads, and spinning OpenMP threads slow down
# badly when the machine is busy. Subprocesses (DDP, runtime checks) inherit the variable.
os.environ.setdefault("OMP_NUM_THREADS", "1")

try:
    import torch
except ImportError:  # the runtime-only install has no torch
    pass
else:
    torch.set_num_threads(1)
