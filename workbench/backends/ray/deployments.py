"""The Ray Serve deployments that serve one model, and the application that chains them.

A model cut into K stages is K deployments composed with handles: the first (``ModelIngress``) takes
requests, batches them with ``@serve.batch`` (counting rows, not requests), computes stage 0 and awaits
the next stage's handle; each later one (``ModelStage``) computes its stage on the whole batch and
passes it on. With K = 1 the ingress is the whole model. Every replica rebuilds its model from the
artifact folder (which it must be able to read: a shared filesystem or a ``runtime_env`` on a cluster).

Imported by the driver when it deploys and by Ray in every replica; this module imports Ray.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
from ray import serve

from .messages import ReplicaSettings, Reply, StageOutput
from .options import RayOptions, code_version, deployment_names, deployment_options, replica_settings


def _rows(items: list[np.ndarray]) -> int:
    """``@serve.batch``'s size of a batch: its rows (a request may carry several)."""
    return sum(len(x) for x in items)


class _Stage:
    """One pipeline stage of a model in a Serve replica: builds its runner, takes live settings."""

    def __init__(self, artifact_path: str, stage: int, stages: int, split: list[int] | None, threads: int,
                 device: str, downstream: Any = None):
        import ray

        from workbench.models.artifact import ModelArtifact
        from workbench.models.runner import pick_device

        artifact = ModelArtifact.open(artifact_path)
        self.runner = artifact.build_runner(stage=stage, stages=stages, split=split, device=pick_device(device),
                                            threads=threads)
        if stage == 0:
            self.runner(artifact.example())  # warm up: the first request should not pay for lazy init
        self.downstream = downstream
        self.settings = ReplicaSettings()
        self.replica = serve.get_replica_context().replica_id.unique_id
        self.actor_id = str(ray.get_runtime_context().get_actor_id() or "")
        self.pid = os.getpid()
        self._computing_since: float | None = None

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Ray Serve calls this on every replica when the deployment's ``user_config`` changes."""
        self.settings = ReplicaSettings.from_dict(user_config)

    def check_health(self) -> None:
        """Unhealthy (Ray replaces the replica) when one batch has been computing past the hung deadline."""
        since = self._computing_since
        if since is not None and time.monotonic() - since > self.settings.hung_after_s:
            raise RuntimeError(f"replica {self.replica} has been computing one batch for more than "
                               f"{self.settings.hung_after_s:g} s")

    async def compute(self, batch: np.ndarray) -> tuple[np.ndarray, float, float]:
        """This stage and every later one: ``(output, start, end)`` in wall-clock seconds."""
        start = time.time()
        self._computing_since = time.monotonic()
        try:
            out = self.runner(batch)  # on the replica's loop: a hung model makes its health check fail
        finally:
            self._computing_since = None
        end = time.time()
        if self.downstream is not None:
            later: StageOutput = await self.downstream.remote(out)
            out, end = later.data, later.compute_end
        return out, start, end


class ModelIngress(_Stage):
    """The first stage: the deployment requests reach. Batches dynamically, counting rows."""

    def __init__(self, artifact_path: str, stage: int, stages: int, split: list[int] | None, threads: int,
                 device: str, downstream: Any = None):
        super().__init__(artifact_path, stage, stages, split, threads, device, downstream)
        # one batch per stage may be in flight, so a pipeline's stages compute at the same time
        options: dict[str, Any] = {"max_batch_size": self.settings.max_batch_size, "batch_wait_timeout_s": 0.0,
                                   "max_concurrent_batches": max(1, stages), "batch_size_fn": _rows}
        try:
            self.batched: Any = serve.batch(**options)(self._run_batch)
        except TypeError:  # a Ray without batch_size_fn: batches then count requests, not rows
            del options["batch_size_fn"]
            self.batched = serve.batch(**options)(self._run_batch)

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        super().reconfigure(user_config)
        self.batched.set_max_batch_size(self.settings.max_batch_size)
        self.batched.set_batch_wait_timeout_s(self.settings.max_delay_ms / 1000.0)

    async def __call__(self, rows: np.ndarray) -> Reply:
        s = self.settings
        if not s.batching or len(rows) > s.max_batch_size:  # (the driver splits larger requests)
            out, start, end = await self.compute(rows)
            return Reply(out, start, end, self.replica, self.actor_id, self.pid, len(rows))
        reply: Reply = await self.batched(rows)
        return reply

    async def _run_batch(self, requests: list[np.ndarray]) -> list[Reply]:
        batch = requests[0] if len(requests) == 1 else np.concatenate(requests)
        out, start, end = await self.compute(batch)
        replies, offset = [], 0
        for rows in requests:
            n = len(rows)
            replies.append(Reply(out[offset:offset + n], start, end, self.replica, self.actor_id, self.pid,
                                 len(batch)))
            offset += n
        return replies


class ModelStage(_Stage):
    """A later pipeline stage: computes its layers on whole batches."""

    async def __call__(self, batch: np.ndarray) -> StageOutput:
        out, _, end = await self.compute(batch)
        return StageOutput(out, end)


def build_application(model: str, artifact: Any, config: Any, options: RayOptions, generation: int) -> Any:
    """The Serve application of ``model`` (a bound chain of its stage deployments)."""
    p = config.placement
    names = deployment_names(model, p.stages)
    settings = replica_settings(config, generation)
    split = list(p.split) if p.split else None
    bound: Any = None
    for stage in reversed(range(p.stages)):
        cls = ModelIngress if stage == 0 else ModelStage
        declare: Any = serve.deployment
        deployment = declare(cls, name=names[stage]).options(
            **deployment_options(config, options, stage=stage, settings=settings))
        # A fixed code version lets Serve update running replicas in place (user_config → reconfigure,
        # num_replicas) instead of replacing them on every change; Ray's public API leaves it to
        # declarative configs, so it is set here on the Deployment object.
        deployment._version = code_version(str(artifact.path), artifact.variant, config, options, stage)
        bound = deployment.bind(str(artifact.path), stage, p.stages, split, p.threads_per_worker, p.device, bound)
    return bound


__all__ = ["ModelIngress", "ModelStage", "build_application"]
