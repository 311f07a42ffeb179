"""Load generation: open-loop (constant, Poisson, step, ramp, spike) and closed-loop schedules against any
OIP v2 HTTP endpoint or an in-process ``Server``, with latency measured from each request's intended
send time. Names are imported on first use, so a generator process loads only what it needs."""

from __future__ import annotations

from workbench._lazy import lazy_getattr

_EXPORTS = {
    "LoadRun": "workbench.load.run",
    "HttpTarget": "workbench.load.targets",
    "InProcessTarget": "workbench.load.targets",
    "Closed": "workbench.load.schedules",
    "Constant": "workbench.load.schedules",
    "Poisson": "workbench.load.schedules",
    "Ramp": "workbench.load.schedules",
    "Spike": "workbench.load.schedules",
    "Step": "workbench.load.schedules",
    "Schedule": "workbench.load.schedules",
    "parse_schedule": "workbench.load.schedules",
    "schedule_from_dict": "workbench.load.schedules",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
