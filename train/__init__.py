"""edgepose.train: models, losses, the two-stage recipe and the trainer (needs torch)."""
