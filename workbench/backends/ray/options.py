"""How a :class:`~workbench.serving.config.ServeConfig` maps onto Ray Serve deployment options.

Pure functions and one config type, no Ray import, so the mapping is testable anywhere:

==============================  ==========================================================================
ServeConfig                      Ray Serve
==============================  ==========================================================================
placement.replicas               ``num_replicas`` of every stage's deployment (or, with
                                 ``RayOptions.autoscaling``, ``autoscaling_config`` whose
                                 ``initial_replicas`` it is)
placement.stages / split         a chain of deployments ``<model>-stage0 → <model>-stage1 → ...``
                                 composed with handles (model parallelism)
placement.threads_per_worker     ``torch.set_num_threads`` in each replica and ``num_cpus`` of its actor
placement.device                 ``cuda``: ``num_gpus: 1`` per replica
batching.*                       ``@serve.batch`` on the first stage, counting rows; its size and delay
                                 change live through ``user_config`` → ``reconfigure()`` → the batch
                                 wrapper's ``set_max_batch_size`` / ``set_batch_wait_timeout_s``
                                 (``max_ongoing_requests`` follows: at least 2 × max_batch_size)
routing                          not applicable: Ray Serve's own router (power of two choices) decides
admission.max_queue              ``max_queued_requests`` of the first stage (counted in requests, not
                                 rows); Ray's ``BackPressureError`` becomes ``Overloaded``
admission.timeout_ms / retries   the driver: a deadline per request, one retry when a replica dies
admission.hung_after_s           ``health_check_timeout_s``: a replica stuck in a batch is replaced
==============================  ==========================================================================
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from workbench.errors import ConfigError
from workbench.serving.config import ServeConfig

from .messages import ReplicaSettings

#: What the UI shows as the routing policy of a model served by Ray.
ROUTING = "ray (power of two choices, Ray Serve's router)"
#: Keys of Ray Serve's ``autoscaling_config`` that RayOptions.autoscaling may set.
AUTOSCALING_KEYS = ("min_replicas", "max_replicas", "initial_replicas", "target_ongoing_requests",
                    "upscale_delay_s", "downscale_delay_s", "metrics_interval_s", "look_back_period_s")
#: Bumped when what a replica runs changes in a way the code version must reflect.
_REPLICA_CODE = "workbench-ray-1"


@dataclass(frozen=True, kw_only=True)
class RayOptions:
    """Settings of the Ray backend that have no counterpart in ``ServeConfig``.

    ``ray_actor_options`` are merged over the defaults of each replica's actor (``num_cpus`` =
    threads per worker, ``num_gpus: 1`` for ``device: cuda``; add e.g. ``runtime_env``).
    ``autoscaling``: Ray Serve autoscaling instead of a fixed replica count, e.g.
    ``{"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 32}`` (``target_ongoing_requests``
    defaults to ``max_batch_size``: a replica holding a full batch is busy). ``max_ongoing_requests``
    overrides the per-replica limit (default ``max(2 × max_batch_size, 2 × stages, 4)``).
    ``app_prefix`` names the Serve applications (``<prefix><model>``) so several users can share a
    cluster. ``max_constructor_retry_count``: how often Ray retries a replica whose model fails to load.
    """

    ray_actor_options: dict[str, Any] | None = None
    autoscaling: dict[str, Any] | None = None
    max_ongoing_requests: int | None = None
    app_prefix: str = "workbench-"
    max_constructor_retry_count: int = 3

    def __post_init__(self) -> None:
        if self.ray_actor_options is not None and not isinstance(self.ray_actor_options, dict):
            raise ConfigError(f"ray_actor_options must be a mapping, got {type(self.ray_actor_options).__name__}")
        if self.autoscaling is not None:
            if not isinstance(self.autoscaling, dict):
                raise ConfigError(f"autoscaling must be a mapping, got {type(self.autoscaling).__name__}")
            unknown = sorted(set(self.autoscaling) - set(AUTOSCALING_KEYS))
            if unknown:
                raise ConfigError(f"unknown autoscaling setting(s) {unknown}; allowed: {list(AUTOSCALING_KEYS)}")
            low, high = self.autoscaling.get("min_replicas", 1), self.autoscaling.get("max_replicas", 1)
            for key, value in (("min_replicas", low), ("max_replicas", high)):
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ConfigError(f"autoscaling {key} must be an integer >= 0, got {value!r}")
            if high < max(low, 1):
                raise ConfigError(f"autoscaling max_replicas must be >= min_replicas and >= 1, got {low}..{high}")
        if self.max_ongoing_requests is not None and (
                isinstance(self.max_ongoing_requests, bool) or not isinstance(self.max_ongoing_requests, int)
                or self.max_ongoing_requests < 1):
            raise ConfigError(f"max_ongoing_requests must be an integer >= 1, got {self.max_ongoing_requests!r}")
        if not isinstance(self.app_prefix, str) or "#" in self.app_prefix or "/" in self.app_prefix:
            raise ConfigError(f"app_prefix must be a string without '#' or '/', got {self.app_prefix!r}")
        if isinstance(self.max_constructor_retry_count, bool) or not isinstance(self.max_constructor_retry_count,
                                                                                 int) \
                or self.max_constructor_retry_count < 1:
            raise ConfigError(f"max_constructor_retry_count must be an integer >= 1, "
                              f"got {self.max_constructor_retry_count!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RayOptions:
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ConfigError(f"RayOptions must be given as a mapping, got {type(data).__name__}")
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ConfigError(f"unknown Ray option(s) {unknown}; allowed: {allowed}")
        return cls(**data)


def deployment_names(model: str, stages: int) -> list[str]:
    """Deployment names of a model's chain: ``[model]`` or ``[model-stage0, model-stage1, ...]``."""
    return [model] if stages == 1 else [f"{model}-stage{k}" for k in range(stages)]


def replica_settings(config: ServeConfig, generation: int = 0) -> ReplicaSettings:
    b = config.batching
    return ReplicaSettings(batching=b.enabled, max_batch_size=b.max_batch_size, max_delay_ms=b.max_delay_ms,
                           hung_after_s=config.admission.hung_after_s, generation=generation)


def max_ongoing_requests(config: ServeConfig, options: RayOptions) -> int:
    """Requests a replica may hold at once. Ray's default (5) would silently cap batches at 5."""
    if options.max_ongoing_requests is not None:
        return options.max_ongoing_requests
    stages = config.placement.stages
    if not config.batching.enabled:
        return max(2 * stages, 2)
    return max(2 * config.batching.max_batch_size, 2 * stages, 4)


def actor_options(config: ServeConfig, options: RayOptions) -> dict[str, Any]:
    p = config.placement
    out: dict[str, Any] = {"num_cpus": p.threads_per_worker}
    if p.device.startswith("cuda"):
        out["num_gpus"] = 1
    out.update(options.ray_actor_options or {})
    return out


def autoscaling_config(config: ServeConfig, options: RayOptions) -> dict[str, Any] | None:
    if options.autoscaling is None:
        return None
    auto = {"target_ongoing_requests": config.batching.max_batch_size, **options.autoscaling}
    low, high = auto.get("min_replicas", 1), auto.get("max_replicas", 1)
    auto.setdefault("initial_replicas", min(max(config.placement.replicas, low), high))
    return auto


def deployment_options(config: ServeConfig, options: RayOptions, *, stage: int,
                       settings: ReplicaSettings) -> dict[str, Any]:
    """Keyword arguments of ``Deployment.options(...)`` for pipeline ``stage`` of ``config``."""
    hung_s = config.admission.hung_after_s
    out: dict[str, Any] = {
        "max_ongoing_requests": max_ongoing_requests(config, options),
        "user_config": settings.to_dict(),
        "ray_actor_options": actor_options(config, options),
        "health_check_period_s": min(10.0, max(1.0, hung_s / 2)),
        "health_check_timeout_s": max(1.0, hung_s),
        "graceful_shutdown_timeout_s": max(1.0, min(hung_s, 20.0)),
        "max_constructor_retry_count": options.max_constructor_retry_count,
        # later stages see only what the first lets through
        "max_queued_requests": config.admission.max_queue if stage == 0 else -1,
    }
    auto = autoscaling_config(config, options)
    if auto is None:
        out["num_replicas"] = config.placement.replicas
    else:
        out["autoscaling_config"] = auto
    return out


def code_version(artifact_path: str, variant: str, config: ServeConfig, options: RayOptions, stage: int) -> str:
    """The Serve code version of a stage's deployment: it changes exactly when its replicas must be
    rebuilt (another artifact, cut, thread count, device or actor options). Everything else (batching,
    replicas, queue limit) then updates the running replicas in place."""
    p = config.placement
    key = {"code": _REPLICA_CODE, "artifact": artifact_path, "variant": variant, "stage": stage,
           "stages": p.stages, "split": list(p.split) if p.split else None, "threads": p.threads_per_worker,
           "device": p.device, "actor": actor_options(config, options)}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


__all__ = ["AUTOSCALING_KEYS", "ROUTING", "RayOptions", "actor_options", "autoscaling_config", "code_version",
           "deployment_names", "deployment_options", "max_ongoing_requests", "replica_settings"]
