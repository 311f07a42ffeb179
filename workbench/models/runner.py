"""Runners: what a worker calls on a batch. numpy in, numpy out, whatever the runtime behind it."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class Runner(Protocol):
    """Computes one batch. The first dimension of input and output is the batch."""

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


def pick_device(device: str = "auto") -> str:
    """``auto`` means CUDA when torch sees a GPU, else CPU."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def set_eval(module: Any) -> Any:
    """``module.eval()``, tolerating modules that refuse it (a torch.export program's module is fixed)."""
    try:
        return module.eval()
    except NotImplementedError:
        return module


class TorchRunner:
    """Runs an ``nn.Module`` in inference mode on a device.

    Float inputs are cast to the module's parameter dtype (bf16 variants take fp32 data) and float
    outputs come back as float32 numpy arrays.
    """

    def __init__(self, module: Any, device: str = "cpu"):
        import torch

        self.device = torch.device(pick_device(device))
        self.module = set_eval(module.to(self.device))
        self.compute_dtype = next(
            (p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32
        )

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            if not batch.flags.writeable:  # e.g. a view on a request body: torch wants writable memory
                batch = batch.copy()
            x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
            if x.is_floating_point() and x.dtype != self.compute_dtype:
                x = x.to(self.compute_dtype)
            y = self.module(x)
            if y.is_floating_point() and y.dtype != torch.float32:
                y = y.float()
            return y.cpu().numpy()


class OnnxRunner:
    """Runs an ONNX model with ONNX Runtime (CPU provider, or CUDA where that build is installed)."""

    def __init__(self, path: str, threads: int | None = None, device: str = "cpu"):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        if pick_device(device) == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(path, sess_options=options, providers=providers)
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(batch)})[0]
        return np.asarray(out)


__all__ = ["OnnxRunner", "Runner", "TorchRunner", "pick_device", "set_eval"]
