"""Data sets that ship inside installed packages, so nothing is downloaded at run time.

- ``digits``: scikit-learn's 8×8 handwritten digits, upsampled to 28×28 single-channel images in [0, 1]
  (1,347 train / 450 test, split with a fixed seed).
- ``mnist1d``: the MNIST-1D signals generated offline by ``mnist1d.data.make_dataset`` (4,000 train /
  1,000 test, 40 samples each). Harder than digits, so it shows what compression costs in accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from workbench.errors import ConfigError


@dataclass(frozen=True)
class Dataset:
    """A labelled train / test split as float32 features and int64 labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1


def _upsample(images_8x8: np.ndarray) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(images_8x8.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    up = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
    return up.clamp_(0.0, 1.0).numpy()


@cache
def _digits() -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    raw = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        raw.images, raw.target, test_size=450, random_state=0, stratify=raw.target
    )
    return Dataset(
        name="digits",
        x_train=_upsample(x_train),
        y_train=y_train.astype(np.int64),
        x_test=_upsample(x_test),
        y_test=y_test.astype(np.int64),
    )


@cache
def _mnist1d() -> Dataset:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    data = make_dataset(args)  # generated locally; never get_dataset, which downloads
    return Dataset(
        name="mnist1d",
        x_train=np.asarray(data["x"], dtype=np.float32),
        y_train=np.asarray(data["y"], dtype=np.int64),
        x_test=np.asarray(data["x_test"], dtype=np.float32),
        y_test=np.asarray(data["y_test"], dtype=np.int64),
    )


_DATASETS = {"digits": _digits, "mnist1d": _mnist1d}


def load_dataset(name: str) -> Dataset:
    """Return the named data set (cached in memory after the first call)."""
    try:
        return _DATASETS[name]()
    except KeyError:
        raise ConfigError(f"unknown data set {name!r}; known: {sorted(_DATASETS)}") from None


__all__ = ["Dataset", "load_dataset"]
