"""Prometheus metrics built from request records: counts, fine latency buckets, batch sizes, live gauges."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from workbench.http.metrics import LATENCY_BUCKETS_S, Metrics
from workbench.serving.records import RequestRecord


def _record(i: int, *, model="mlp", outcome="ok", latency_s=0.0019, batch=(0, 4)) -> RequestRecord:
    start = 10.0 + batch[0]
    return RequestRecord(request_id=i, model=model, outcome=outcome, rows=1, received_at=start - 0.001,
                         completed_at=start - 0.001 + latency_s, enqueued_at=start - 0.001, dispatched_at=start,
                         compute_start=start if outcome == "ok" else None,
                         compute_end=start + 0.0005 if outcome == "ok" else None,
                         worker="mlp/r0", batch_size=batch[1] if outcome == "ok" else 0)


def _samples(metrics: Metrics) -> dict:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_buckets_span_ten_microseconds_to_a_hundred_seconds_finely():
    assert LATENCY_BUCKETS_S[0] == 1e-5 and LATENCY_BUCKETS_S[-1] == 100.0
    ratios = [b / a for a, b in zip(LATENCY_BUCKETS_S, LATENCY_BUCKETS_S[1:])]
    assert max(ratios) <= 1.34  # a p99 read from the buckets is within a third of the truth


def test_records_become_counts_and_histograms():
    metrics = Metrics(stats=lambda: {"mlp": {"queue_requests": 3, "queue_rows": 5, "restarts": 2,
                                                   "replicas": {"ready": 2}}})
    records = [_record(i, batch=(0, 4)) for i in range(4)] + [_record(4 + i, batch=(1, 2)) for i in range(2)]
    records += [_record(9, outcome="overloaded", latency_s=0.0001), _record(10, model="cnn", latency_s=0.5)]
    metrics.observe(records[:3])
    metrics.observe(records[3:])
    metrics.count_response("mlp", 200)
    metrics.count_response("", 404)
    s = _samples(metrics)
    assert s[("workbench_requests_total", (("model", "mlp"), ("outcome", "ok")))] == 6
    assert s[("workbench_requests_total", (("model", "mlp"), ("outcome", "overloaded")))] == 1
    assert s[("workbench_request_latency_seconds_count", (("model", "mlp"),))] == 7
    assert s[("workbench_request_latency_seconds_bucket", (("le", "0.0001"), ("model", "mlp")))] == 1
    assert s[("workbench_request_latency_seconds_bucket", (("le", "0.002"), ("model", "mlp")))] == 7
    assert s[("workbench_request_latency_seconds_bucket", (("le", "0.4"), ("model", "cnn")))] == 0
    assert s[("workbench_request_latency_seconds_bucket", (("le", "0.5"), ("model", "cnn")))] == 1
    assert abs(s[("workbench_compute_seconds_sum", (("model", "mlp"),))] - 6 * 0.0005) < 1e-9
    # a batch of 4 (its records split over two deliveries) and a batch of 2: each counted once
    assert s[("workbench_batch_size_bucket", (("le", "2.0"), ("model", "mlp")))] == 1
    assert s[("workbench_batch_size_bucket", (("le", "4.0"), ("model", "mlp")))] == 2
    assert s[("workbench_batch_size_count", (("model", "mlp"),))] == 2
    assert s[("workbench_queue_depth", (("model", "mlp"),))] == 3
    assert s[("workbench_queue_rows", (("model", "mlp"),))] == 5
    assert s[("workbench_replicas_ready", (("model", "mlp"),))] == 2
    assert s[("workbench_worker_restarts_total", (("model", "mlp"),))] == 2
    assert s[("workbench_http_responses_total", (("code", "404"), ("model", "")))] == 1
