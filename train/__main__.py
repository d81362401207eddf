"""``python -m edgepose.train`` (and ``torchrun --nproc_per_node N -m edgepose.train``)."""
import sys

from .cli import main

sys.exit(main())
