"""Facts the Model and Serve sections show: a model's signature, size and accuracy; which backends exist."""

from __future__ import annotations

from typing import Any


def describe_signature(signature: Any) -> str:
    """``input float32[N, 784] → logits float32[N, 10]``."""
    def spec(t: Any) -> str:
        shape = ", ".join(str(d) for d in ("N", *t.shape))
        return f"{t.name} {t.dtype}[{shape}]"
    return f"{spec(signature.input)} → {spec(signature.output)}"


def model_facts(model: Any) -> dict[str, Any]:
    """Name, variant, signature, parameters, size and accuracy of a loaded model (may evaluate it)."""
    size = 0
    if model.module is not None:
        size = sum(p.numel() * p.element_size() for p in model.module.parameters())
        size += sum(b.numel() * b.element_size() for b in model.module.buffers())
    size = int(model.metrics.get("model_bytes", size) or size)
    accuracy = model.metrics.get("accuracy")
    if accuracy is None and model.eval_data is not None:
        accuracy = model.evaluate()
    return {"model_name": model.name, "variant": model.variant, "signature": describe_signature(model.signature),
            "parameters": int(model.num_parameters), "size_mb": size / 1e6,
            "accuracy": None if accuracy is None else float(accuracy)}


def ray_available() -> bool:
    """Whether the Ray backend exists in this install (the Serve view greys it out otherwise)."""
    import importlib.util

    try:
        return (importlib.util.find_spec("workbench.backends.ray") is not None
                and importlib.util.find_spec("ray") is not None)
    except (ImportError, ValueError):
        return False


__all__ = ["describe_signature", "model_facts", "ray_available"]
