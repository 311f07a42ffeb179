"""The OIP v2 routes over real HTTP against a real Server: metadata, inference, errors, metrics."""

from __future__ import annotations

import gzip
import threading

import numpy as np
import orjson
import pytest
from oip_helpers import call, infer_body
from prometheus_client.parser import text_string_to_metric_families

from workbench.testing import wait_for


def _samples(url: str) -> dict:
    answer = call(url, "GET", "/metrics")
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(answer.body.decode()) for s in f.samples}


def test_server_health_and_model_metadata(served):
    assert call(served.url, "GET", "/v2/health/live").json() == {"live": True}
    assert call(served.url, "GET", "/v2/health/ready").json() == {"ready": True}
    meta = call(served.url, "GET", "/v2").json()
    assert meta["name"] == "workbench" and "binary_tensor_data" in meta["extensions"]
    assert set(meta["models"]) == {"mlp", "echo", "sleepy"}
    for path in ("/v2/models/mlp", "/v2/models/mlp/versions/1"):
        model = call(served.url, "GET", path).json()
        assert model["name"] == "mlp" and model["versions"] == ["1"]
        assert model["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 784]}]
        assert model["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}]
    assert call(served.url, "GET", "/v2/models/mlp/ready").json()["ready"] is True
    assert call(served.url, "GET", "/v2/models/echo/versions/1/ready").status == 200


def test_json_inference_matches_the_model_flat_and_nested(served, zoo_mlp):
    x = zoo_mlp.eval_data[0][:3]
    expected = zoo_mlp.predict(x)
    for body in (infer_body(x, id="a1"),
                 orjson.dumps({"inputs": [{"name": "input", "shape": [3, 784], "datatype": "FP32",
                                           "data": x.tolist()}], "id": "a1"})):
        answer = call(served.url, "POST", "/v2/models/mlp/infer", body)
        assert answer.status == 200, answer.body
        doc = answer.json()
        assert doc["model_name"] == "mlp" and doc["model_version"] == "1" and doc["id"] == "a1"
        (out,) = doc["outputs"]
        assert out["name"] == "logits" and out["datatype"] == "FP32" and out["shape"] == [3, 10]
        np.testing.assert_allclose(np.asarray(out["data"], np.float32).reshape(3, 10), expected, rtol=1e-4, atol=1e-5)


def test_binary_tensors_in_and_out(served, zoo_mlp):
    x = zoo_mlp.eval_data[0][:2]
    raw = x.astype("<f4").tobytes()
    header = orjson.dumps({"inputs": [{"name": "input", "shape": [2, 784], "datatype": "FP32",
                                       "parameters": {"binary_data_size": len(raw)}}],
                           "outputs": [{"name": "logits", "parameters": {"binary_data": True}}]})
    answer = call(served.url, "POST", "/v2/models/mlp/versions/1/infer", header + raw,
                  {"Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"})
    assert answer.status == 200, answer.body
    json_len = int(answer.headers["inference-header-content-length"])
    (out,) = orjson.loads(answer.body[:json_len])["outputs"]
    assert out["parameters"]["binary_data_size"] == 2 * 10 * 4
    y = np.frombuffer(answer.body[json_len:], "<f4").reshape(out["shape"])
    np.testing.assert_allclose(y, zoo_mlp.predict(x), rtol=1e-4, atol=1e-5)


def test_gzip_request_body(served):
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    answer = call(served.url, "POST", "/v2/models/echo/infer", gzip.compress(infer_body(x)),
                  {"Content-Encoding": "gzip"})
    assert answer.status == 200
    np.testing.assert_array_equal(np.asarray(answer.json()["outputs"][0]["data"], np.float32).reshape(2, 4), x)


def test_several_models_at_once(served, zoo_mlp):
    x4 = np.array([[1, 2, 3, 4]], np.float32)
    results = {}

    def run(name, body):
        results[name] = call(served.url, "POST", f"/v2/models/{name}/infer", body)

    threads = [threading.Thread(target=run, args=("echo", infer_body(x4))),
               threading.Thread(target=run, args=("mlp", infer_body(zoo_mlp.eval_data[0][:1])))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results["echo"].json()["outputs"][0]["data"] == [1, 2, 3, 4]
    assert results["mlp"].json()["outputs"][0]["shape"] == [1, 10]


@pytest.mark.parametrize("path,body,headers,status,needle", [
    ("/v2/models/mlp/infer", b"{", {}, 400, "not valid JSON"),
    ("/v2/models/echo/infer", infer_body(np.zeros((1, 4), np.float32), name="x"), {}, 400, "unknown input 'x'"),
    ("/v2/models/echo/infer", infer_body(np.zeros((1, 5), np.float32)), {}, 400, "[-1, 4]"),
    ("/v2/models/echo/infer", infer_body(np.zeros((1, 4), np.float32)).replace(b"FP32", b"INT8"), {}, 400, "takes FP32"),
    ("/v2/models/echo/infer", infer_body(np.zeros((1, 4), np.float32)), {"Inference-Header-Content-Length": "9999"},
     400, "Inference-Header-Content-Length"),
    ("/v2/models/echo/infer", b"{}", {"Content-Encoding": "br"}, 415, "Content-Encoding"),
    ("/v2/models/nope/infer", b"{}", {}, 404, "unknown model 'nope'; served: echo, mlp, sleepy"),
    ("/v2/models/echo/versions/7/infer", b"{}", {}, 404, "no version '7'"),
    ("/v2/models/echo/versions/1/x/infer", b"{}", {}, 404, "no route"),
])
def test_client_mistakes_get_a_json_error_and_the_right_status(served, path, body, headers, status, needle):
    answer = call(served.url, "POST", path, body, headers)
    assert answer.status == status
    assert answer.headers["content-type"] == "application/json"
    assert needle in answer.json()["error"]


def test_unknown_routes_and_methods(served):
    for method, path, status in (("GET", "/nowhere", 404), ("GET", "/v2/models/nope", 404),
                                 ("GET", "/v2/models/mlp/infer", 405), ("DELETE", "/v2/health/ready", 405),
                                 ("GET", "/v2/models/nope/ready", 404)):
        answer = call(served.url, method, path)
        assert answer.status == status, (method, path)
        assert isinstance(answer.json()["error"], str)


def test_body_over_the_limit_is_413(served):
    from workbench.http.serve import serve_http

    with serve_http(served.server, port=0, max_body_bytes=1000) as small:
        big = infer_body(np.zeros((100, 4), np.float32))
        assert len(big) > 1000
        answer = call(small.url, "POST", "/v2/models/echo/infer", big)
        assert answer.status == 413 and "limit of 1000 bytes" in answer.json()["error"]
        assert answer.headers["connection"] == "close"  # the rest of a huge upload is not read
        inflated = gzip.compress(infer_body(np.zeros((100, 4), np.float32)))
        assert len(inflated) < 1000
        answer = call(small.url, "POST", "/v2/models/echo/infer", inflated, {"Content-Encoding": "gzip"})
        assert answer.status == 413
        assert call(small.url, "POST", "/v2/models/echo/infer", infer_body(np.zeros((1, 4), np.float32))).status == 200


def test_overload_is_503_with_retry_after(served):
    """The sleepy model computes one row at a time for 800 ms and queues one row: once its worker is
    full and the queue holds a row, the next request is refused at once."""
    x = np.ones((1, 4), np.float32)
    server, answers, threads = served.server, [], []
    ok_before = server.stats()["sleepy"]["outcomes"].get("ok", 0)

    def admitted() -> int:
        s = server.stats()["sleepy"]
        return s["in_flight"] + s["queue_rows"] + s["outcomes"].get("ok", 0) - ok_before

    while server.stats()["sleepy"]["queue_rows"] < 1:
        assert len(threads) < 5, "the queue never filled"
        threads.append(threading.Thread(target=lambda: answers.append(
            call(served.url, "POST", "/v2/models/sleepy/infer", infer_body(x)))))
        threads[-1].start()
        wait_for(lambda: admitted() >= len(threads), message="request admitted")
    refused = call(served.url, "POST", "/v2/models/sleepy/infer", infer_body(x))
    assert refused.status == 503
    assert int(refused.headers["retry-after"]) >= 1
    assert "overloaded" in refused.json()["error"]
    for t in threads:
        t.join(timeout=30)
    assert [a.status for a in answers] == [200] * len(threads)


def test_deadline_passed_is_504(served):
    body = infer_body(np.ones((1, 4), np.float32), parameters={"timeout": 50_000})  # 50 ms, in microseconds
    answer = call(served.url, "POST", "/v2/models/sleepy/infer", body)
    assert answer.status == 504 and "deadline" in answer.json()["error"]


def test_metrics_follow_the_traffic(served):
    before = _samples(served.url)
    key = ("workbench_requests_total", (("model", "echo"), ("outcome", "ok")))
    for _ in range(5):
        assert call(served.url, "POST", "/v2/models/echo/infer", infer_body(np.ones((1, 4), np.float32))).status == 200
    assert call(served.url, "POST", "/v2/models/echo/infer", b"[").status == 400
    after = wait_for(lambda: (s := _samples(served.url))[key] >= before.get(key, 0) + 5 and s)
    count = ("workbench_request_latency_seconds_count", (("model", "echo"),))
    assert after[count] - before.get(count, 0) >= 5
    for hist in ("workbench_queue_seconds_count", "workbench_compute_seconds_count", "workbench_batch_size_count"):
        assert after[(hist, (("model", "echo"),))] > 0, hist
    bad = ("workbench_http_responses_total", (("code", "400"), ("model", "echo")))
    assert after[bad] - before.get(bad, 0) == 1
    assert ("workbench_queue_depth", (("model", "sleepy"),)) in after
    assert ("workbench_worker_restarts_total", (("model", "mlp"),)) in after
