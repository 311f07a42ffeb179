"""Loading models from what users have: a zoo name, an ``nn.Module``, or a file.

Files, by what they hold (not by their extension alone):

- a workbench artifact folder (``manifest.json``);
- a ``torch.export`` program (``.pt2``);
- a TorchScript module (a zip archive holding TorchScript code);
- a state_dict plus an importable factory ``"package.module:function"``;
- an ONNX model (``.onnx``).

Pickled whole modules are refused: files are read with ``torch.load(weights_only=True)``, which never
runs code. A user who trusts a file opts in with ``trust_pickle=True``.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import ConfigError, ModelLoadError
from workbench.models.runner import set_eval
from workbench.models.signature import NUMPY_TO_OIP, Signature, TensorSpec

#: packages whose functions read, write or run things rather than build models: a factory named by a
#: (possibly untrusted) artifact manifest may not be one of theirs (``nn.Module`` classes are fine)
_NOT_FACTORIES = frozenset({"numpy", "pandas", "scipy", "torch", "onnx", "onnxruntime", "yaml", "ruamel", "joblib",
                            "dill", "cloudpickle", "requests", "httpx", "aiohttp", "urllib3", "click", "rich",
                            "IPython", "jupyter_client", "ray", "panel", "bokeh", "tornado", "uvicorn", "starlette",
                            "psutil", "setuptools", "pip", "_pytest", "pytest", "hypothesis"})


def _check_factory(spec: str, factory: Any) -> None:
    """Refuse a "factory" that is not one: a built-in, a class other than an ``nn.Module``, or a function
    of the standard library or of a non-model package (``subprocess:run``, ``os:makedirs``, ``numpy:save``):
    an artifact's manifest names its factory, and loading an artifact must not run a command."""
    import inspect

    from torch import nn

    if inspect.isclass(factory) and issubclass(factory, nn.Module):
        return
    top = (getattr(factory, "__module__", None) or "").split(".")[0]
    if (not inspect.isfunction(factory) or top in sys.stdlib_module_names or top in _NOT_FACTORIES
            or top == "builtins"):
        raise ModelLoadError(
            f"factory {spec!r} is not a model factory: it must be an nn.Module class or a Python function of "
            "your own code that builds one (not a built-in or a function of the standard library or of "
            f"{top or 'a non-model package'}), so it is refused without being called")


def call_factory(spec: str, kwargs: dict[str, Any] | None = None) -> Any:
    """Import ``"package.module:function"`` and call it with ``kwargs``; it must return an ``nn.Module``."""
    from torch import nn

    if not isinstance(spec, str) or spec.count(":") != 1:
        raise ConfigError(f"factory must look like 'package.module:function', got {spec!r}")
    if not isinstance(kwargs, (dict, type(None))):
        raise ConfigError(f"factory {spec!r}: its keyword arguments must be a mapping, got {type(kwargs).__name__}")
    module_name, attr = spec.split(":")
    if module_name.split(".")[0] in sys.stdlib_module_names:  # checked before importing: imports run code
        raise ModelLoadError(f"factory {spec!r} is not a model factory: the standard library builds no models, "
                             "so it is refused without being imported or called")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, ValueError) as exc:
        raise ModelLoadError(f"factory {spec!r}: cannot import {module_name!r} ({exc})") from None
    except AttributeError:
        raise ModelLoadError(f"factory {spec!r}: module {module_name!r} has no attribute {attr!r}") from None
    _check_factory(spec, factory)
    try:
        model = factory(**(kwargs or {}))
    except TypeError as exc:
        raise ModelLoadError(f"factory {spec!r} does not take the keyword arguments {sorted(kwargs or {})}: "
                             f"{exc}") from None
    if not isinstance(model, nn.Module):
        raise ModelLoadError(f"factory {spec!r} returned {type(model).__name__}, expected an nn.Module")
    return model


def load_export_program(path: Path) -> Any:
    """``torch.export.load``, with torch's own warning (a traceback, for a damaged file) kept out of the
    user's terminal: the caller turns the failure into one clear error."""
    import logging

    import torch

    logger = logging.getLogger("torch.export")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return torch.export.load(str(path))
    finally:
        logger.setLevel(level)


def _as_batch(example: Any) -> np.ndarray:
    import torch

    if isinstance(example, (tuple, list)) and len(example) == 1:
        example = example[0]
    if isinstance(example, torch.Tensor):
        example = example.detach().cpu().numpy()
    if not isinstance(example, np.ndarray):
        raise ConfigError(
            f"example input must be one tensor or numpy array with a batch dimension, got {type(example).__name__}"
        )
    if example.ndim < 1 or example.shape[0] < 1:
        raise ConfigError(f"example input must have a batch dimension of at least 1, got shape {example.shape}")
    if str(example.dtype) not in NUMPY_TO_OIP:
        raise ConfigError(f"example input dtype {example.dtype} is not supported; allowed: {sorted(NUMPY_TO_OIP)}")
    return np.ascontiguousarray(example)


def _infer_signature(module: Any, example: np.ndarray, input_name: str, output_name: str) -> Signature:
    import torch

    try:
        with torch.inference_mode():
            out = module(torch.from_numpy(example))
    except Exception as exc:
        raise ConfigError(
            f"the model fails on the example input of shape {tuple(example.shape)} and dtype "
            f"{example.dtype}: {exc}. Pass an example batch the model accepts."
        ) from None
    if not isinstance(out, torch.Tensor):
        raise ConfigError(f"the model must return one tensor; it returned {type(out).__name__}")
    if out.shape[0] != example.shape[0]:
        raise ConfigError(f"the model's output batch {out.shape[0]} differs from the input batch {example.shape[0]}")
    out_dtype = "float32" if out.is_floating_point() else str(out.dtype).removeprefix("torch.")
    return Signature(
        input=TensorSpec(name=input_name, shape=example.shape[1:], dtype=str(example.dtype)),
        output=TensorSpec(name=output_name, shape=tuple(out.shape[1:]), dtype=out_dtype),
    )


def from_module(
    module: Any, example: Any, *, name: str = "model", factory: str | None = None,
    factory_kwargs: dict[str, Any] | None = None, eval_data: tuple[np.ndarray, np.ndarray] | None = None,
    input_name: str = "input", output_name: str = "output",
) -> Any:
    """Wrap a user's ``nn.Module`` and an example batch. With ``factory`` the model saves as
    state_dict + factory (and can be cut into stages if it is ``nn.Sequential``); otherwise it saves
    as a ``torch.export`` program."""
    from torch import nn

    from workbench.models.model import Model

    if not isinstance(module, nn.Module):
        raise ConfigError(f"expected an nn.Module, got {type(module).__name__}")
    batch = _as_batch(example)
    module = set_eval(module)
    signature = _infer_signature(module, batch, input_name, output_name)
    source: dict[str, Any] = (
        {"kind": "factory", "factory": factory, "kwargs": factory_kwargs or {}} if factory else {"kind": "module"}
    )
    return Model(name=name, module=module, signature=signature, example=batch, source=source,
                 eval_data=eval_data, lineage={"base": name, "steps": []})


def _zip_names(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as z:
            return z.namelist()
    except (zipfile.BadZipFile, OSError):
        return []


def load_file(
    path: str | Path, *, example: Any = None, name: str | None = None, factory: str | None = None,
    factory_kwargs: dict[str, Any] | None = None, trust_pickle: bool = False,
    eval_data: tuple[np.ndarray, np.ndarray] | None = None,
) -> Any:
    """Load a model file or artifact folder (see the module docstring for the formats)."""
    import torch

    from workbench.models.artifact import ModelArtifact
    from workbench.models.model import Model, model_from_artifact

    p = Path(path)
    if not p.exists():
        raise ModelLoadError(f"model file {str(p)!r} does not exist")
    if p.is_dir():
        return model_from_artifact(ModelArtifact.open(p))
    name = name or p.stem
    names = _zip_names(p)
    suffix = p.suffix.lower()

    if suffix == ".onnx":
        return _load_onnx(p, name=name, example=example, eval_data=eval_data)
    if any(n.endswith("/code/") or "/code/__torch__" in n for n in names):  # TorchScript archive
        module = torch.jit.load(str(p), map_location="cpu")
        _require_example(example, "a TorchScript module")
        model = from_module(module, example, name=name, eval_data=eval_data)
        model.source = {"kind": "torchscript"}
        return _with_file_artifact(model, p, "torchscript")
    if suffix == ".pt2" or any(n.endswith("serialized_exported_program.json") or "/models/" in n for n in names):
        try:
            program = load_export_program(p)
        except Exception as exc:
            raise ModelLoadError(f"{p} is not a readable torch.export program: {exc}") from None
        if example is None:
            example_inputs = getattr(program, "example_inputs", None)
            if example_inputs and example_inputs[0]:
                example = example_inputs[0][0]
        _require_example(example, "a torch.export program without stored example inputs")
        model = from_module(program.module(), example, name=name, eval_data=eval_data)
        model.source = {"kind": "export"}
        return _with_file_artifact(model, p, "export")
    if not names and suffix not in (".pt", ".pth", ".bin"):
        raise ModelLoadError(
            f"{p}: unknown model file format; expected a workbench artifact folder, a torch.export "
            "program (.pt2), a TorchScript module, a state_dict (.pt/.pth) with a factory, or ONNX (.onnx)"
        )
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        if not trust_pickle:
            raise ModelLoadError(
                f"{p} is not a plain state_dict: loading it would unpickle arbitrary Python objects, which "
                "can run code, so it is refused. Save a state_dict, a torch.export program (.pt2) or "
                "TorchScript instead; or, only for a file you trust, pass trust_pickle=True "
                f"(CLI: --trust-pickle). ({type(exc).__name__})"
            ) from None
        obj = torch.load(p, map_location="cpu", weights_only=False)
    from torch import nn

    if isinstance(obj, nn.Module):
        _require_example(example, "a pickled module")
        return from_module(obj, example, name=name, eval_data=eval_data)
    if not isinstance(obj, dict):
        raise ModelLoadError(f"{p} holds a {type(obj).__name__}, expected a state_dict")
    if factory is None:
        raise ConfigError(f"{p} is a state_dict: pass factory='package.module:function' that builds its model")
    module = call_factory(factory, factory_kwargs)
    try:
        module.load_state_dict(obj)
    except RuntimeError as exc:
        raise ModelLoadError(f"the state_dict in {p} does not fit the model from {factory!r}: {exc}") from None
    if example is None:
        raise ConfigError(f"loading {p} needs an example input batch to learn the model's signature")
    return from_module(module, example, name=name, factory=factory, factory_kwargs=factory_kwargs,
                       eval_data=eval_data)
    _ = Model  # keep import for type readers


def _require_example(example: Any, what: str) -> None:
    if example is None:
        raise ConfigError(f"loading {what} needs an example input batch (example=...) to learn its signature")


def _with_file_artifact(model: Any, path: Path, kind: str) -> Any:
    from workbench.models.artifact import write_artifact

    tmp = Path(tempfile.mkdtemp(prefix="workbench-file-"))
    model.artifact = write_artifact(tmp, name=model.name, kind=kind, model_file=path,
                                    signature=model.signature, example=model.example)
    return model


def _load_onnx(path: Path, *, name: str, example: Any, eval_data: Any) -> Any:
    import onnxruntime as ort

    from workbench.models.model import Model
    from workbench.models.runner import OnnxRunner

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelLoadError(f"{path} is not a readable ONNX model: {exc}") from None
    onnx_types = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(int64)": "int64",
                  "tensor(int32)": "int32", "tensor(uint8)": "uint8", "tensor(int8)": "int8",
                  "tensor(bool)": "bool", "tensor(float16)": "float16"}
    inp, out = session.get_inputs()[0], session.get_outputs()[0]
    if example is None:
        dims = [d if isinstance(d, int) else 1 for d in inp.shape]
        example = np.zeros(dims, dtype=onnx_types.get(inp.type, "float32"))
    batch = _as_batch(example)
    runner = OnnxRunner(str(path))
    result = runner(batch)
    signature = Signature(
        input=TensorSpec(name=inp.name, shape=batch.shape[1:], dtype=str(batch.dtype)),
        output=TensorSpec(name=out.name, shape=result.shape[1:], dtype=onnx_types.get(out.type, "float32")),
    )
    model = Model(name=name, module=None, signature=signature, example=batch, source={"kind": "onnx"},
                  eval_data=eval_data, runner_override=runner)
    return _with_file_artifact(model, path, "onnx")


def load_model(source: Any, **kwargs: Any) -> Any:
    """Load a model from a zoo name, an ``nn.Module`` (with ``example=``), or a file path."""
    from torch import nn

    from workbench.models.zoo import ZOO, load_zoo

    if isinstance(source, nn.Module):
        example = kwargs.pop("example", None)
        if example is None:
            raise ConfigError("loading an nn.Module needs an example input batch: load_model(module, example=x)")
        return from_module(source, example, **kwargs)
    if isinstance(source, str) and source in ZOO:
        return load_zoo(source, **kwargs)
    if isinstance(source, (str, Path)) and (Path(source).exists() or "/" in str(source) or "." in str(source)):
        return load_file(source, **kwargs)
    raise ConfigError(
        f"unknown model {source!r}: not a zoo model ({', '.join(sorted(ZOO))}), not an existing file"
    )


__all__ = ["call_factory", "from_module", "load_file", "load_model"]
