"""The API's view of the served models follows the Server: models added, removed and re-added."""

from __future__ import annotations

import numpy as np
from oip_helpers import call, infer_body

from workbench.testing import make_artifact


def test_a_model_added_removed_and_re_added_with_another_shape(served, tmp_path):
    server = served.server
    server.add_model("scratch", make_artifact("echo", tmp_path / "four", shape=(4,)))
    try:
        assert call(served.url, "POST", "/v2/models/scratch/infer", infer_body(np.ones((1, 4), np.float32))).status == 200
        assert "scratch" in call(served.url, "GET", "/v2").json()["models"]
        server.remove_model("scratch")
        gone = call(served.url, "POST", "/v2/models/scratch/infer", infer_body(np.ones((1, 4), np.float32)))
        assert gone.status == 404 and "unknown model 'scratch'" in gone.json()["error"]
        server.add_model("scratch", make_artifact("echo", tmp_path / "six", shape=(6,)))
        meta = call(served.url, "GET", "/v2/models/scratch").json()
        assert meta["inputs"][0]["shape"] == [-1, 6]
        x = np.arange(6, dtype=np.float32).reshape(1, 6)
        answer = call(served.url, "POST", "/v2/models/scratch/infer", infer_body(x))
        assert answer.status == 200 and answer.json()["outputs"][0]["data"] == x.ravel().tolist()
        stale = call(served.url, "POST", "/v2/models/scratch/infer", infer_body(np.ones((1, 4), np.float32)))
        assert stale.status == 400 and "[-1, 6]" in stale.json()["error"]
    finally:
        if "scratch" in server.models():
            server.remove_model("scratch")
