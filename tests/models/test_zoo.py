from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import ConfigError
from workbench.models import ZOO, load_zoo
from workbench.models.data import load_dataset
from workbench.models.zoo import train_classifier, zoo_entry


@pytest.mark.parametrize("name,floor", [("mlp", 0.95), ("cnn", 0.95), ("transformer", 0.96), ("mlp1d", 0.45)])
def test_zoo_models_reach_held_out_accuracy(name, floor):
    model = load_zoo(name, progress=False)
    accuracy = model.evaluate()
    assert accuracy >= floor, f"{name}: {accuracy:.3f} < {floor}"
    assert model.metrics["accuracy"] == pytest.approx(accuracy)
    x, y = model.eval_data
    assert len(x) == len(y) and len(x) in (450, 1000)


def test_training_is_seeded_and_cache_makes_second_load_instant(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    first = load_zoo("mlp1d", progress=False)
    cached = list((tmp_path / "zoo").iterdir())
    assert len(cached) == 1 and (cached[0] / "manifest.json").is_file()
    again = load_zoo("mlp1d", progress=False)
    retrained = load_zoo("mlp1d", retrain=True, progress=False)
    x = first.example
    np.testing.assert_array_equal(first.predict(x), again.predict(x))
    np.testing.assert_allclose(first.predict(x), retrained.predict(x), rtol=1e-4, atol=1e-4)


def test_training_options_warm_up_smooth_and_shift_and_still_learn():
    import torch

    data = load_dataset("digits")
    x, y = data.x_train[:512, 0], data.y_train[:512]  # (n, 28, 28) rows, as the transformer reads them
    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    train_classifier(module, x, y, epochs=4, lr=1e-2, weight_decay=0.01, optimizer="adamw", warmup_fraction=0.2,
                     label_smoothing=0.1, shift_px=2, progress=False)
    with torch.no_grad():
        accuracy = (module(torch.from_numpy(data.x_test[:, 0])).argmax(1).numpy() == data.y_test).mean()
    assert accuracy >= 0.85


def test_training_options_are_checked():
    import torch

    module = torch.nn.Linear(40, 10)
    x, y = np.zeros((8, 40), dtype=np.float32), np.zeros(8, dtype=np.int64)
    with pytest.raises(ConfigError, match="adamw"):
        train_classifier(module, x, y, epochs=1, optimizer="sgd", progress=False)
    with pytest.raises(ConfigError, match="shift_px"):
        train_classifier(module, x, y, epochs=1, shift_px=2, progress=False)


def test_unknown_zoo_name_lists_the_known_ones():
    with pytest.raises(ConfigError) as err:
        zoo_entry("resnet")
    for name in ZOO:
        assert name in str(err.value)


def test_datasets_ship_offline_with_real_splits():
    digits = load_dataset("digits")
    assert digits.x_train.shape == (1347, 1, 28, 28) and digits.x_test.shape == (450, 1, 28, 28)
    assert 0.0 <= digits.x_train.min() and digits.x_train.max() <= 1.0
    signals = load_dataset("mnist1d")
    assert signals.x_train.shape[1] == 40 and signals.num_classes == 10
    with pytest.raises(ConfigError, match="known"):
        load_dataset("imagenet")
