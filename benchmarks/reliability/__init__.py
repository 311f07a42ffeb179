"""Reliability benchmarks: faults under load, overload, soak. Each module runs on its own with ``python -m``."""
