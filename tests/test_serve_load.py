"""The web page under bounded load (benchmarks/serve_load.py): 200 submissions from 4 concurrent
clients against ``facevox serve`` on 127.0.0.1 with the tests' debug pipeline."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from curate_fixtures import have_espeak

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # about 4 min on 2 busy cores: ~110 generations of a debug model, one at a time
@pytest.mark.skipif(not have_espeak(), reason="needs espeak-ng")
def test_200_submissions_from_4_clients(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    from serve_load import run

    report = run(tmp_path, n=200, clients=4, max_waiting=8)
    assert report["failures"] == []
    answers = report["answers"]
    assert sum(answers.values()) == 200
    assert answers["valid -> 202"] == 80 and answers["invalid -> 400"] == 50
    assert answers["oversized -> 413"] == 30 and answers["job_error -> 202"] == 10
    assert report["queue_full_answers"] > 0 and report["max_jobs_waiting_seen"] <= 8
    assert "queue is full" in report["queue_full_message"]
    ends = report["job_end_states"]
    assert sum(ends.values()) == report["jobs_accepted"] and ends["error"] == 10
    assert {"POST /api/jobs -> 202", "GET /api/jobs/ID", "GET /api/jobs"} <= set(report["latency"])
