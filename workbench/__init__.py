"""workbench: load, compress, serve, load-test and watch PyTorch models from a notebook or a dashboard."""

__version__ = "0.1.0"
