"""``edgepose-calibrate``: sigma's scale refitted on labelled frames like the deployment's
(:mod:`.refit` does it, :mod:`.cli` is the command line)."""
