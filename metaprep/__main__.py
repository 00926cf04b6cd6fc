"""`python -m metaprep` (also what `torchrun -m metaprep` runs)."""

from .cli import main

main()
