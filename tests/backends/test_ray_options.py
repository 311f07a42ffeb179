"""How a ServeConfig maps onto Ray Serve options, and what the Ray backend checks before it starts.
None of this needs a running Ray (or Ray installed)."""

from __future__ import annotations

import time

import pytest

from workbench.backends import create_backend
from workbench.backends.base import Backend
from workbench.backends.ray import RayBackend, RayOptions
from workbench.backends.ray.messages import ReplicaSettings, to_monotonic
from workbench.backends.ray.options import (
    code_version,
    deployment_names,
    deployment_options,
    max_ongoing_requests,
    replica_settings,
)
from workbench.errors import BackendUnavailable, ConfigError
from workbench.serving.config import ServeConfig


def _options(config: ServeConfig, options: RayOptions | None = None, stage: int = 0) -> dict:
    return deployment_options(config, options or RayOptions(), stage=stage, settings=replica_settings(config))


def test_replicas_batching_and_queue_map_onto_serve_options():
    config = ServeConfig.from_dict({"placement": {"replicas": 3, "threads_per_worker": 2},
                                    "batching": {"max_batch_size": 16, "max_delay_ms": 4},
                                    "admission": {"max_queue": 100, "timeout_ms": 8000}})
    first = _options(config)
    assert first["num_replicas"] == 3 and "autoscaling_config" not in first
    assert first["max_ongoing_requests"] == 32  # >= 2 x max_batch_size, or Ray's 5 would cap batches
    assert first["max_queued_requests"] == 100
    assert first["ray_actor_options"] == {"num_cpus": 2}
    assert first["user_config"] == {"batching": True, "max_batch_size": 16, "max_delay_ms": 4,
                                    "hung_after_s": 8.0, "generation": 0}
    assert first["health_check_timeout_s"] == 8.0
    assert _options(config, stage=1)["max_queued_requests"] == -1  # later stages: the first one admits
    assert max_ongoing_requests(config.replace(enabled=False), RayOptions()) == 2
    assert max_ongoing_requests(config.replace(stages=4, max_batch_size=1), RayOptions()) == 8
    assert max_ongoing_requests(config, RayOptions(max_ongoing_requests=7)) == 7


def test_actor_options_merge_over_the_defaults():
    config = ServeConfig.from_dict({"placement": {"device": "cuda"}})
    options = RayOptions(ray_actor_options={"num_cpus": 0.5, "runtime_env": {"env_vars": {"A": "1"}}})
    assert _options(config, options)["ray_actor_options"] == {
        "num_cpus": 0.5, "num_gpus": 1, "runtime_env": {"env_vars": {"A": "1"}}}


def test_autoscaling_replaces_the_replica_count():
    config = ServeConfig.from_dict({"placement": {"replicas": 9}, "batching": {"max_batch_size": 8}})
    opts = _options(config, RayOptions(autoscaling={"min_replicas": 1, "max_replicas": 4}))
    assert "num_replicas" not in opts
    assert opts["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 4, "initial_replicas": 4,
                                          "target_ongoing_requests": 8}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"autoscaling": {"max_replica": 3}}, r"unknown autoscaling setting\(s\) \['max_replica'\]; allowed"),
    ({"autoscaling": {"min_replicas": 3, "max_replicas": 2}}, "max_replicas must be >= min_replicas"),
    ({"max_ongoing_requests": 0}, "max_ongoing_requests must be an integer >= 1, got 0"),
    ({"app_prefix": "a#b"}, "app_prefix must be a string without"),
    ({"ray_actor_options": ["num_cpus"]}, "ray_actor_options must be a mapping, got list"),
])
def test_bad_ray_options_are_refused_clearly(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        RayOptions(**kwargs)


def test_ray_options_round_trip_through_dicts():
    options = RayOptions(autoscaling={"min_replicas": 1, "max_replicas": 2}, max_ongoing_requests=9, app_prefix="x-")
    assert RayOptions.from_dict(options.to_dict()) == options
    with pytest.raises(ConfigError, match=r"unknown Ray option\(s\) \['replicas'\]"):
        RayOptions.from_dict({"replicas": 2})


def test_code_version_changes_only_when_replicas_must_be_rebuilt():
    base = ServeConfig()
    version = code_version("/models/mlp", "fp32", base, RayOptions(), 0)
    live = base.replace(max_batch_size=4, max_delay_ms=3, replicas=5, max_queue=7, timeout_ms=50, routing="round_robin")
    assert code_version("/models/mlp", "fp32", live, RayOptions(), 0) == version  # updated in place
    for other in (code_version("/models/int8", "int8", base, RayOptions(), 0),
                  code_version("/models/mlp", "fp32", base.replace(threads_per_worker=2), RayOptions(), 0),
                  code_version("/models/mlp", "fp32", base.replace(stages=2), RayOptions(), 0),
                  code_version("/models/mlp", "fp32", base, RayOptions(ray_actor_options={"num_cpus": 2}), 0),
                  code_version("/models/mlp", "fp32", base, RayOptions(), 1)):
        assert other != version


def test_deployment_names_chain_the_stages():
    assert deployment_names("mlp", 1) == ["mlp"]
    assert deployment_names("mlp", 3) == ["mlp-stage0", "mlp-stage1", "mlp-stage2"]


def test_replica_settings_round_trip():
    settings = replica_settings(ServeConfig().replace(max_batch_size=5, enabled=False), generation=3)
    assert ReplicaSettings.from_dict(settings.to_dict()) == settings
    assert settings.max_batch_size == 5 and not settings.batching and settings.generation == 3


def test_replica_times_become_monotonic_within_the_requests_span():
    mono, wall = time.monotonic(), time.time()
    start, end = to_monotonic([wall - 0.3, wall - 0.2], [wall - 0.1, wall - 0.15], mono - 1, mono + 1)
    assert start == pytest.approx(mono - 0.3, abs=0.05) and end == pytest.approx(mono - 0.1, abs=0.05)
    # a replica whose clock runs 10 s ahead cannot place compute outside the request's own span
    start, end = to_monotonic([wall + 10], [wall + 10.1], mono - 0.5, mono)
    assert mono - 0.5 <= start <= end <= mono


def test_the_ray_backend_is_built_by_name_and_checks_before_starting(tmp_path):
    backend = create_backend("ray", models={}, config=None, address="auto")
    assert isinstance(backend, RayBackend) and isinstance(backend, Backend)
    assert backend.kind == "ray" and backend.models() == [] and backend.stats() == {}
    with pytest.raises(BackendUnavailable, match="not running: call start"):
        backend.infer("mlp", None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="address must be"):
        RayBackend(address="")
    with pytest.raises(ConfigError, match="config names model"):
        RayBackend(models={"a": "mlp"}, config={"b": {}})
    with pytest.raises(ConfigError, match="unknown autoscaling"):
        RayBackend(autoscaling={"replicas": 2})
