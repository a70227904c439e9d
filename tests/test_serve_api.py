"""``facevox serve`` JSON API over HTTP: submit uploads, poll progress, fetch the mp4; bad input."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from curate_fixtures import have_espeak
from facevox.io.media import read_av
from pipeline_fixtures import make_inputs
from serve_fixtures import running_server

pytestmark = pytest.mark.skipif(not have_espeak(), reason="needs espeak-ng")


def _post(url: str, body: object) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30) as r:
        return r.status, r.read(), dict(r.headers)


def _upload(path: Path) -> dict[str, str]:
    return {"filename": path.name, "data": base64.b64encode(path.read_bytes()).decode()}


def test_submit_poll_and_fetch_the_clip(tmp_path: Path) -> None:
    inputs = make_inputs(tmp_path / "inputs")
    with running_server(tmp_path) as (url, runner):
        status, page, _ = _get(url + "/")
        assert status == 200 and b'id="generate"' in page
        body = {
            "people": [
                {
                    "name": "alice",
                    "faces": [_upload(inputs["alice.png"])],
                    "voice": _upload(inputs["alice.wav"]),
                }
            ],
            "script": "[alice] Hello there.",
            "duration": 0.8,
            "seed": 1,
            "steps": 2,
        }
        status, job = _post(url + "/api/jobs", body)
        assert status == 202 and job["state"] in ("queued", "running"), job
        deadline = time.monotonic() + 120
        while job["state"] not in ("done", "error") and time.monotonic() < deadline:
            time.sleep(0.2)
            job = json.loads(_get(f"{url}/api/jobs/{job['id']}")[1])
        assert job["state"] == "done", job
        assert job["step"] == job["steps"] == 2
        status, mp4, headers = _get(url + job["video"])
        assert status == 200 and headers["Content-Type"] == "video/mp4"
        (tmp_path / "got.mp4").write_bytes(mp4)
        assert read_av(tmp_path / "got.mp4").video.shape == (9, 32, 48, 3)  # 0.8 s at 10 fps -> 9
        status, part, headers = _get(url + job["video"], {"Range": "bytes=0-99"})
        assert status == 206 and part == mp4[:100] and headers["Content-Range"] == f"bytes 0-99/{len(mp4)}"
        side = json.loads(_get(url + job["sidecar"])[1])
        assert side["seed"] == 1 and side["people"][0]["name"] == "alice"

        # a face photo without a face: accepted, then the job reports the pipeline's error
        body["people"][0]["faces"] = [_upload(inputs["noface.png"])]
        status, job = _post(url + "/api/jobs", body)
        while job["state"] not in ("done", "error"):
            time.sleep(0.2)
            job = json.loads(_get(f"{url}/api/jobs/{job['id']}")[1])
        assert job["state"] == "error" and "no face" in job["error"]
        assert "'noface.png'" in job["error"] and str(tmp_path) not in job["error"]  # as uploaded


def test_bad_submissions_are_refused_before_anything_is_queued(tmp_path: Path) -> None:
    inputs = make_inputs(tmp_path / "inputs")
    alice = {"name": "alice", "faces": [_upload(inputs["alice.png"])], "voice": _upload(inputs["alice.wav"])}
    with running_server(tmp_path) as (url, runner):
        cases = [
            ({"people": [alice], "script": "[bob] hi"}, "bob"),
            ({"people": [alice], "script": "[alice] hi", "duration": 9.0}, "at most 21"),
            ({"people": [alice], "script": ""}, "write a script"),
            ({"people": [], "script": "[alice] hi"}, "at least one person"),
            ({"people": [{**alice, "faces": []}], "script": "[alice] hi"}, "face image"),
            (
                {"people": [{**alice, "voice": {"filename": "v.wav", "data": ""}}], "script": "[alice] hi"},
                "empty",
            ),
            ({"people": [alice], "script": "[alice] hi", "steps": 500}, "steps"),
        ]
        for body, message in cases:
            status, reply = _post(url + "/api/jobs", body)
            assert status == 400 and message in reply["error"], (body.get("script"), reply)
        req = urllib.request.Request(url + "/api/jobs", data=b"{not json", method="POST")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        assert e.value.code == 400
        assert runner.jobs == {}
        assert not (tmp_path / "work" / "jobs").exists() or not list((tmp_path / "work" / "jobs").iterdir())


def _short_job(inputs: dict[str, Path]) -> dict:
    """A one-person, one-step, 0.4-s submission."""
    alice = {"name": "alice", "faces": [_upload(inputs["alice.png"])], "voice": _upload(inputs["alice.wav"])}
    return {"people": [alice], "script": "[alice] Hello there.", "duration": 0.4, "steps": 1}


def test_a_restarted_server_lists_earlier_jobs_and_serves_their_clips(tmp_path: Path) -> None:
    inputs = make_inputs(tmp_path / "inputs")
    body = _short_job(inputs)
    with running_server(tmp_path) as (url, runner):
        status, job = _post(url + "/api/jobs", body)
        while job["state"] not in ("done", "error"):
            time.sleep(0.2)
            job = json.loads(_get(f"{url}/api/jobs/{job['id']}")[1])
        assert job["state"] == "done", job
        mp4 = _get(url + job["video"])[1]
    # a job the server was in the middle of when it stopped, and a record that cannot be read
    cut = tmp_path / "work" / "jobs" / "0123456789ab"
    cut.mkdir()
    (cut / "job.json").write_text(json.dumps({**job, "id": cut.name, "state": "running", "created": 1.0}))
    (tmp_path / "work" / "jobs" / "badbadbadbad").mkdir()
    (tmp_path / "work" / "jobs" / "badbadbadbad" / "job.json").write_text("{half")
    with running_server(tmp_path) as (url, runner):
        jobs = json.loads(_get(url + "/api/jobs")[1])["jobs"]
        assert [j["id"] for j in jobs] == [job["id"], cut.name]  # newest first; the unreadable one skipped
        assert jobs[0]["state"] == "done" and jobs[0]["people"] == ["alice"]
        assert _get(url + jobs[0]["video"])[1] == mp4
        assert jobs[1]["state"] == "error" and "interrupted" in jobs[1]["error"]
        assert json.loads((cut / "job.json").read_text())["state"] == "error"  # and recorded so


def test_the_queue_is_bounded_and_says_so(tmp_path: Path) -> None:
    """A worker held on its first job: two more wait, the fourth is refused with 503 and nothing
    of it is written; once the queue drains every job ends done."""
    import threading

    from facevox.serve import JobRunner, make_server

    release = threading.Event()

    class HeldPipeline:  # the debug pipeline, held at its first call until released
        def __init__(self, pipe):
            self.pipe = pipe

        def check(self, req):
            return self.pipe.check(req)

        def __call__(self, *args, **kwargs):
            release.wait(60)
            return self.pipe(*args, **kwargs)

    from facevox.pipeline import FacevoxPipeline
    from facevox.pipeline.pipeline import GenerateConfig
    from pipeline_fixtures import make_pipeline_dir

    inputs = make_inputs(tmp_path / "inputs")
    pipe = HeldPipeline(FacevoxPipeline.from_pretrained(make_pipeline_dir(tmp_path / "pipe")))
    runner = JobRunner(pipe, tmp_path / "work", config=GenerateConfig(solver="euler"), max_waiting=2)  # type: ignore[arg-type]
    server = make_server(runner, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    body = _short_job(inputs)
    try:
        ids = [_post(url + "/api/jobs", body)[1]["id"]]
        deadline = time.monotonic() + 30
        while runner.jobs[ids[0]].state != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        ids += [_post(url + "/api/jobs", body)[1]["id"] for _ in range(2)]
        folders = sorted(p.name for p in (tmp_path / "work" / "jobs").iterdir())
        status, reply = _post(url + "/api/jobs", body)
        assert status == 503 and "queue is full" in reply["error"], reply
        assert sorted(p.name for p in (tmp_path / "work" / "jobs").iterdir()) == folders  # nothing written
        release.set()
        deadline = time.monotonic() + 120
        while any(runner.jobs[i].state not in ("done", "error") for i in ids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [runner.jobs[i].state for i in ids] == ["done"] * 3
        status, job = _post(url + "/api/jobs", body)
        assert status == 202  # room again
        while runner.jobs[job["id"]].state not in ("done", "error") and time.monotonic() < deadline:
            time.sleep(0.1)  # (a worker thread left in torch at exit aborts the interpreter)
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def test_an_oversized_or_ill_framed_body_gets_an_answer(tmp_path: Path) -> None:
    """A body over the limit is read and dropped so the client sees the 413 (not a reset connection);
    a Content-Length that is not a byte count is a 400 at once (not a thread waiting for the end)."""
    import http.client
    import threading

    from facevox.serve import make_server
    from facevox.serve.server import MAX_UPLOAD_BYTES

    class NoJobs:  # the HTTP side alone: nothing gets past the framing checks
        jobs: dict = {}

        def submit(self, payload):
            raise AssertionError("no submission may reach the runner")

        def listing(self):
            return []

    server = make_server(NoJobs(), "127.0.0.1", 0)  # type: ignore[arg-type]
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def post(body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=30)
        try:
            conn.request("POST", "/api/jobs", body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read())
        finally:
            conn.close()

    try:
        status, reply = post(b"x" * (MAX_UPLOAD_BYTES + 2**20), {})
        assert status == 413 and "the limit is 64 MiB" in reply["error"]
        for length in ("-1", "abc", "\u00b2"):  # a superscript two is a digit to str.isdigit
            t0 = time.monotonic()
            status, reply = post(b"{}", {"Content-Length": length})
            assert status == 400 and "Content-Length" in reply["error"] and time.monotonic() - t0 < 5
    finally:
        server.shutdown()
        server.server_close()
