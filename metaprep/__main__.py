"""`python -m metaprep` (also what `torchrun -m metaprep` runs)."""

from metaprep.cli import main

main()
