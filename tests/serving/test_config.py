"""ServeConfig: validated on construction, round trips through dicts and YAML, flat changes."""

from __future__ import annotations

import dataclasses

import pytest

from workbench.errors import ConfigError
from workbench.serving.config import (
    FLAT_FIELDS,
    AdmissionConfig,
    BatchingConfig,
    PlacementConfig,
    ServeConfig,
    as_serve_config,
)

CUSTOM = ServeConfig(
    placement=PlacementConfig(replicas=2, stages=3, split=(2, 4), micro_batch_rows=4, threads_per_worker=2,
                              device="cpu", start_timeout_s=30.0),
    batching=BatchingConfig(enabled=False, max_batch_size=8, max_delay_ms=2.5),
    routing="power_of_two",
    admission=AdmissionConfig(max_queue=64, timeout_ms=500.0, retries=0, compute_timeout_ms=250.0),
)


@pytest.mark.parametrize("config", [ServeConfig(), CUSTOM])
def test_round_trips_through_dict_and_yaml(config):
    assert ServeConfig.from_dict(config.to_dict()) == config
    assert ServeConfig.from_yaml(config.to_yaml()) == config


@pytest.mark.parametrize("cls", [PlacementConfig, BatchingConfig, AdmissionConfig])
def test_every_section_round_trips(cls):
    section = getattr(CUSTOM, {PlacementConfig: "placement", BatchingConfig: "batching",
                               AdmissionConfig: "admission"}[cls])
    assert cls.from_dict(section.to_dict()) == section
    with pytest.raises(dataclasses.FrozenInstanceError):
        section.__setattr__(dataclasses.fields(cls)[0].name, 1)


def test_yaml_file_and_partial_dicts(tmp_path):
    path = tmp_path / "serve.yaml"
    path.write_text("placement:\n  replicas: 3\nrouting: round_robin\n")
    config = ServeConfig.from_yaml(path)
    assert config.placement.replicas == 3 and config.routing == "round_robin"
    assert config.batching == BatchingConfig()  # missing sections take their defaults
    assert ServeConfig(placement={"replicas": 2}).placement == PlacementConfig(replicas=2)
    assert as_serve_config(None) == ServeConfig()


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: BatchingConfig(max_batch_size=0), "max_batch_size must be in 1..65536, got 0"),
        (lambda: BatchingConfig(max_delay_ms=-1), "max_delay_ms must be >= 0"),
        (lambda: BatchingConfig(enabled="yes"), "enabled must be true or false"),
        (lambda: PlacementConfig(replicas=0), "replicas must be in 1..64, got 0"),
        (lambda: PlacementConfig(replicas=True), "replicas must be an integer"),
        (lambda: PlacementConfig(stages=2, split=(1, 2)), "split must hold stages - 1 = 1"),
        (lambda: PlacementConfig(stages=3, split=(3, 2)), "strictly increasing"),
        (lambda: PlacementConfig(device="tpu"), "device must be"),
        (lambda: PlacementConfig(threads_per_worker=0), "threads_per_worker must be"),
        (lambda: AdmissionConfig(max_queue=0), "max_queue must be >= 1"),
        (lambda: AdmissionConfig(timeout_ms=0), "timeout_ms must be > 0"),
        (lambda: AdmissionConfig(retries=9), "retries must be in 0..5"),
        (lambda: ServeConfig(routing="random"), "routing must be one of"),
        (lambda: ServeConfig.from_dict({"max_batch_size": 4}), "max_batch_size belongs under batching"),
        (lambda: ServeConfig.from_dict({"batching": {"size": 4}}), "unknown BatchingConfig setting(s) ['size']"),
        (lambda: ServeConfig.from_yaml("placement: [1, 2"), "not valid YAML"),
    ],
)
def test_bad_values_are_refused_with_a_clear_message(build, message):
    with pytest.raises(ConfigError) as info:
        build()
    assert message in str(info.value)


def test_replace_by_flat_name_and_diff():
    base = ServeConfig()
    changed = base.replace(max_batch_size=8, replicas=3, routing="round_robin", timeout_ms=100)
    assert changed.batching.max_batch_size == 8 and changed.placement.replicas == 3
    assert changed.routing == "round_robin" and changed.admission.timeout_ms == 100
    assert base.diff(changed) == {"max_batch_size": [32, 8], "replicas": [1, 3],
                                  "routing": ["least_outstanding", "round_robin"], "timeout_ms": [10000.0, 100]}
    assert base.replace(batching={"max_delay_ms": 3}).batching == BatchingConfig(max_delay_ms=3)
    assert set(base.flat()) == set(FLAT_FIELDS)
    with pytest.raises(ConfigError, match="unknown serve setting 'batch'"):
        base.replace(batch=3)
    with pytest.raises(ConfigError, match="max_batch_size"):
        base.replace(max_batch_size=-1)


def test_repr_is_readable():
    text = repr(ServeConfig(batching=BatchingConfig(max_batch_size=8)))
    assert "max_batch_size=8" in text and "routing='least_outstanding'" in text


def test_hung_deadline_defaults_to_the_request_timeout():
    assert AdmissionConfig(timeout_ms=400).hung_after_s == 0.4
    assert AdmissionConfig(timeout_ms=400, compute_timeout_ms=100).hung_after_s == 0.1
