"""Command-line entry points of the core package (numpy + pillow only)."""
