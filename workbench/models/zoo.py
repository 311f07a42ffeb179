"""The built-in model zoo: small models trained on data that ships with installed packages.

Each model trains once (seeded, reproducible, with a progress bar) and is cached as an artifact under
``$WORKBENCH_CACHE`` (default ``~/.cache/workbench``), so the next load is instant.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import ConfigError
from workbench.models.signature import Signature, TensorSpec

ZOO_VERSION = 2
DEFAULT_MODEL = "mlp"

_VIEWS: dict[str, tuple[int, ...]] = {"flat": (784,), "image": (1, 28, 28), "rows": (28, 28), "signal": (40,)}


@dataclass(frozen=True)
class ZooEntry:
    """How a zoo model is built and trained."""

    name: str
    description: str
    family: str
    arch: dict[str, Any]
    dataset: str
    view: str
    epochs: int
    lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    optimizer: str = "adam"
    warmup_fraction: float = 0.0
    label_smoothing: float = 0.0
    shift_px: int = 0
    labels: tuple[str, ...] = field(default=tuple(str(i) for i in range(10)))

    @property
    def input_shape(self) -> tuple[int, ...]:
        return _VIEWS[self.view]

    def cache_key(self) -> str:
        blob = json.dumps([ZOO_VERSION, self.family, self.arch, self.dataset, self.view, self.epochs,
                           self.lr, self.batch_size, self.weight_decay, self.optimizer, self.warmup_fraction,
                           self.label_smoothing, self.shift_px], sort_keys=True)
        return f"{self.name}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in [
        ZooEntry("mlp", "MLP 784-1024-1024-10 (the reference serving shape) on scikit-learn digits (28×28, "
                 "flattened)", "mlp", {"in_features": 784, "hidden": [1024, 1024]}, "digits", "flat", epochs=20),
        ZooEntry("cnn", "Two-conv CNN on scikit-learn digits (1×28×28)", "cnn",
                 {"channels": [32, 64], "hidden": 128}, "digits", "image", epochs=8),
        # a serving-size encoder (BERT-mini-like width): at d_model 64 the per-call overhead hides what
        # int8 and pruning save; AdamW with warm-up, label smoothing and ±2-pixel shifts train it in 20 epochs
        ZooEntry("transformer", "2-layer Transformer encoder (d_model 256, 4 heads, feed-forward 1024) reading "
                 "each of 28 rows as a token (digits)", "transformer",
                 {"rows": 28, "features": 28, "d_model": 256, "heads": 4, "layers": 2, "ff": 1024},
                 "digits", "rows", epochs=20, lr=1e-3, weight_decay=0.01, optimizer="adamw",
                 warmup_fraction=0.1, label_smoothing=0.1, shift_px=2),
        ZooEntry("mlp1d", "MLP 40-256-256-10 on MNIST-1D (generated offline; harder, shows accuracy loss)",
                 "mlp", {"in_features": 40, "hidden": [256, 256]}, "mnist1d", "signal", epochs=60,
                 weight_decay=1e-4),
    ]
}


def zoo_entry(name: str) -> ZooEntry:
    try:
        return ZOO[name]
    except KeyError:
        raise ConfigError(f"unknown zoo model {name!r}; known: {', '.join(sorted(ZOO))}") from None


def cache_dir() -> Path:
    """Where trained zoo models live: ``$WORKBENCH_CACHE``, else ``$XDG_CACHE_HOME/workbench``."""
    root = os.environ.get("WORKBENCH_CACHE")
    if root:
        return Path(root).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "workbench"


def evaluation_split(evaluation: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The held-out (x, y) an artifact's ``evaluation`` section names."""
    from workbench.models.data import load_dataset

    data = load_dataset(evaluation["dataset"])
    shape = _VIEWS[evaluation["view"]]
    return data.x_test.reshape(-1, *shape), data.y_test


def training_split(evaluation: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The training (x, y) an artifact's ``evaluation`` section names (used by fine-tuning)."""
    from workbench.models.data import load_dataset

    data = load_dataset(evaluation["dataset"])
    return data.x_train.reshape(-1, *_VIEWS[evaluation["view"]]), data.y_train


def train_classifier(
    module: Any, x: np.ndarray, y: np.ndarray, *, epochs: int, lr: float = 1e-3, batch_size: int = 64,
    weight_decay: float = 0.0, seed: int = 0, progress: bool = True, desc: str = "training",
    loss_fn: Any = None, callback: Any = None, optimizer: str = "adam", warmup_fraction: float = 0.0,
    label_smoothing: float = 0.0, shift_px: int = 0,
) -> Any:
    """Seeded Adam training loop with a tqdm bar. ``loss_fn(logits, xb, yb)`` overrides cross-entropy
    (distillation uses it); ``callback(done, total)`` reports progress to a UI.

    The learning rate follows a cosine decay per epoch; with ``warmup_fraction`` > 0 it rises linearly over
    that fraction of the steps first, then decays per step. ``optimizer`` is ``"adam"`` or ``"adamw"``
    (decoupled weight decay). ``shift_px`` > 0 shifts each batch's images (the last two dimensions) by up to
    that many pixels (a light augmentation for inputs with blank borders)."""
    import math

    import torch
    from torch.nn import functional as F
    from tqdm.auto import tqdm

    optimizers = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    if optimizer not in optimizers:
        raise ConfigError(f"unknown optimizer {optimizer!r}; known: {sorted(optimizers)}")
    if shift_px and x.ndim < 3:
        raise ConfigError(f"shift_px shifts images (samples of at least 2 dimensions); these samples have shape "
                          f"{tuple(x.shape[1:])}: use shift_px=0")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = optimizers[optimizer](module.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = (len(xt) + batch_size - 1) // batch_size
    total = epochs * steps_per_epoch
    warmup = int(warmup_fraction * total)
    per_step = warmup > 0
    if per_step:
        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

        sched: Any = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    else:
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
    module.train()
    bar = tqdm(total=total, desc=desc, disable=not progress, leave=False, unit="step")
    done = 0
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=generator)
        for i in range(0, len(xt), batch_size):
            idx = order[i : i + batch_size]
            xb, yb = xt[idx], yt[idx]
            if shift_px > 0:
                dy, dx = torch.randint(-shift_px, shift_px + 1, (2,), generator=generator).tolist()
                xb = torch.roll(xb, shifts=(dy, dx), dims=(-2, -1))
            logits = module(xb)
            if loss_fn is not None:
                loss = loss_fn(logits, xb, yb)
            else:
                loss = F.cross_entropy(logits, yb, label_smoothing=label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if per_step:
                sched.step()
            done += 1
            bar.update(1)
            if callback is not None:
                callback(done, total)
        if not per_step:
            sched.step()
    bar.close()
    return module.eval()


def load_zoo(name: str, *, retrain: bool = False, progress: bool = True, callback: Any = None) -> Any:
    """Load zoo model ``name``: from the cache if trained before, else train it (≈ seconds) and cache it."""
    from workbench.models.architectures import build_architecture
    from workbench.models.artifact import ModelArtifact, write_artifact
    from workbench.models.model import Model, model_from_artifact

    entry = zoo_entry(name)
    folder = cache_dir() / "zoo" / entry.cache_key()
    if not retrain and (folder / "manifest.json").is_file():
        try:
            return model_from_artifact(ModelArtifact.open(folder))
        except Exception:  # a damaged cache entry is rebuilt, never trusted
            pass
    import torch

    torch.manual_seed(0)
    module = build_architecture(entry.family, entry.arch)
    evaluation = {"dataset": entry.dataset, "view": entry.view}
    x, y = training_split(evaluation)
    train_classifier(module, x, y, epochs=entry.epochs, lr=entry.lr, batch_size=entry.batch_size,
                     weight_decay=entry.weight_decay, optimizer=entry.optimizer,
                     warmup_fraction=entry.warmup_fraction, label_smoothing=entry.label_smoothing,
                     shift_px=entry.shift_px, progress=progress, desc=f"training {name}", callback=callback)
    x_test, y_test = evaluation_split(evaluation)
    signature = Signature(
        input=TensorSpec(name="input", shape=entry.input_shape),
        output=TensorSpec(name="logits", shape=(10,)),
        labels=entry.labels,
    )
    model = Model(
        name=name, module=module, signature=signature, example=x_test[:8].copy(),
        source={"kind": "architecture", "family": entry.family, "arch": entry.arch},
        eval_data=(x_test, y_test), evaluation=evaluation, lineage={"base": name, "steps": []},
    )
    model.metrics = {"accuracy": model.evaluate(), "parameters": model.num_parameters}
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    write_artifact(tmp, name=name, kind="architecture",
                   source={"family": entry.family, "arch": entry.arch}, state_dict=module.state_dict(),
                   signature=signature, example=model.example, evaluation=evaluation,
                   lineage=model.lineage, metrics=model.metrics)
    import shutil

    if folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
    try:
        tmp.replace(folder)
    except OSError:  # another process cached the same model first: theirs is as good as ours
        shutil.rmtree(tmp, ignore_errors=True)
    model.artifact = ModelArtifact.open(folder)
    return model


__all__ = ["DEFAULT_MODEL", "ZOO", "ZooEntry", "cache_dir", "evaluation_split", "load_zoo",
           "train_classifier", "training_split", "zoo_entry"]
