from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import ConfigError
from workbench.models import ZOO, load_zoo
from workbench.models.data import load_dataset
from workbench.models.zoo import zoo_entry


@pytest.mark.parametrize("name,floor", [("mlp", 0.95), ("cnn", 0.95), ("transformer", 0.90), ("mlp1d", 0.45)])
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
