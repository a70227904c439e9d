"""The web page under bounded load: ``facevox serve`` on 127.0.0.1, many submissions from concurrent clients.

    python benchmarks/serve_load.py OUT_DIR [--submissions 200] [--clients 4] [--max-waiting 8] [--json R.json]

Starts ``python -m facevox.cli serve`` (the tests' random debug pipeline: generation takes about a
second) on an ephemeral port with its work folder in ``OUT_DIR/root/work`` and its current folder
``OUT_DIR/root``. The clients share a fixed, shuffled list of submissions: valid ones (one or two
people, one step), ones whose upload names try to climb out of the work folder, invalid ones (unknown
speaker, empty script, bad base64, steps out of range, not JSON, a bad Content-Length...), ones that
pass the checks but fail in the job (a photo without a face) and oversized ones (a 65 MiB body, over
the page's 64 MiB limit). A full queue answers 503; the client waits half a second and submits the
same again. Once every submission has an answer, the clients poll each accepted job to its end and
fetch the clip of those done; a monitor lists the jobs every 0.2 s to see how many wait.

Checks (exit 1 when one fails): every request is answered (no reset, no time-out); the server
process is up at the end and logged no exception; no more than ``--max-waiting`` jobs ever wait and
a full queue says so; every accepted job ends done (its mp4 served) or with an error message;
refused submissions leave nothing; nothing is written under OUT_DIR/root outside the work folder,
nor where the climbing names point. Reports p50/p95 latency of each API call (not of generation).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from pipeline_fixtures import make_inputs, make_pipeline_dir  # noqa: E402  (the tests' debug pipeline)

REPO = Path(__file__).resolve().parents[1]
OVERSIZED_BYTES = 65 * 2**20  # one over the server's 64 MiB limit
ESCAPE = "fvx-escape"  # every climbing upload name holds this, to look for it afterwards
END_STATES = ("done", "error")


@dataclass(frozen=True)
class Submission:
    kind: str  # valid | traversal | invalid | job_error | oversized
    what: str  # which variant, for the report
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class Call:
    endpoint: str
    status: int  # 0: no HTTP answer (reset, time-out)
    seconds: float
    error: str = ""


@dataclass
class Answer:
    submission: Submission
    status: int
    reply: dict[str, Any]
    queue_full: list[str] = field(default_factory=list)  # the messages of the 503s before this answer


@dataclass
class Load:
    calls: list[Call] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    max_waiting_seen: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, call: Call) -> None:
        with self.lock:
            self.calls.append(call)


def _upload(name: str, data: bytes) -> dict[str, str]:
    return {"filename": name, "data": base64.b64encode(data).decode()}


def submissions(inputs: dict[str, Path], n: int, seed: int = 0) -> list[Submission]:
    """``n`` submissions, shuffled: 40 % valid, 15 % climbing names, 25 % invalid, 5 % failing in
    the job, 15 % oversized."""
    face, voice = inputs["alice.png"].read_bytes(), inputs["alice.wav"].read_bytes()
    bob_face, bob_voice = inputs["bob.png"].read_bytes(), inputs["bob.wav"].read_bytes()
    alice = {"name": "alice", "faces": [_upload("alice.png", face)], "voice": _upload("alice.wav", voice)}
    bob = {"name": "bob", "faces": [_upload("bob.png", bob_face)], "voice": _upload("bob.wav", bob_voice)}
    job = {"script": "[alice] Hello there.", "duration": 0.4, "steps": 1}

    def js(obj: Any) -> bytes:
        return json.dumps(obj).encode()

    def valid(i: int) -> Submission:
        if i % 4 == 3:
            body = {**job, "people": [alice, bob], "script": "[alice] Hello. [bob] Hi!", "seed": i}
            return Submission("valid", "two people", js(body))
        return Submission("valid", "one person", js({**job, "people": [alice], "seed": i}))

    def traversal(i: int) -> Submission:
        names = [
            f"../../../../{ESCAPE}-{i}.png",  # from WORK/jobs/ID/inputs up to OUT_DIR/root
            f"../../../../../../../../../../tmp/{ESCAPE}-{i}.png",
            f"/tmp/{ESCAPE}-abs-{i}.png",
            f"..\\..\\..\\..\\{ESCAPE}-{i}.png",
            f"{ESCAPE}/../../../../../{ESCAPE}-{i}.wav",
        ]
        name = names[i % len(names)]
        person = {
            "name": "alice",
            "faces": [_upload(name, face)],
            "voice": _upload(name.replace(".png", ".wav"), voice),
        }
        if i % 3 == 2:  # and a person named like a path
            person = {**person, "name": f"../../{ESCAPE}"}
            return Submission(
                "traversal",
                "path as person name",
                js({**job, "people": [person], "script": f"[../../{ESCAPE}] hi"}),
            )
        return Submission("traversal", "path as upload name", js({**job, "people": [person], "seed": i}))

    invalid_bodies: list[tuple[str, bytes, tuple[tuple[str, str], ...]]] = [
        ("unknown speaker", js({**job, "people": [alice], "script": "[carol] hi"}), ()),
        ("empty script", js({**job, "people": [alice], "script": " "}), ()),
        ("no people", js({**job, "people": []}), ()),
        ("bad base64", js({**job, "people": [{**alice, "voice": {"filename": "v.wav", "data": "%%%"}}]}), ()),
        (
            "empty upload",
            js({**job, "people": [{**alice, "faces": [{"filename": "f.png", "data": ""}]}]}),
            (),
        ),
        ("steps 500", js({**job, "people": [alice], "steps": 500}), ()),
        ("too long", js({**job, "people": [alice], "duration": 99.0}), ()),
        ("not JSON", b"{people: [", ()),
        ("JSON list", js([1, 2, 3]), ()),
        ("negative Content-Length", js({**job, "people": [alice]}), (("Content-Length", "-1"),)),
    ]

    def invalid(i: int) -> Submission:
        what, body, headers = invalid_bodies[i % len(invalid_bodies)]
        return Submission("invalid", what, body, headers)

    noface = inputs["noface.png"].read_bytes()
    failing = js({**job, "people": [{**alice, "faces": [_upload("noface.png", noface)]}]})
    head = (
        b'{"script": "[alice] hi", "people": [{"name": "alice", "faces": [{"filename": "big.png", "data": "'
    )
    tail = b'"}], "voice": ' + js(_upload("alice.wav", voice)) + b"}]}"
    oversized = head + b"A" * (OVERSIZED_BYTES - len(head) - len(tail)) + tail

    plan = [("valid", 0.40), ("traversal", 0.15), ("invalid", 0.25), ("job_error", 0.05), ("oversized", 0.15)]
    out: list[Submission] = []
    for kind, share in plan:
        count = round(n * share) if kind != "oversized" else n - len(out)
        for i in range(count):
            if kind == "valid":
                out.append(valid(i))
            elif kind == "traversal":
                out.append(traversal(i))
            elif kind == "invalid":
                out.append(invalid(i))
            elif kind == "job_error":
                out.append(Submission("job_error", "photo without a face", failing))
            else:
                out.append(Submission("oversized", "65 MiB body", oversized))
    random.Random(seed).shuffle(out)
    return out


class Client:
    """HTTP/1.0-style calls (the server closes each connection), each timed and recorded."""

    def __init__(self, port: int, load: Load, timeout: float = 120.0):
        self.port, self.load, self.timeout = port, load, timeout

    def call(
        self,
        method: str,
        path: str,
        endpoint: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        t0 = time.perf_counter()
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            status = resp.status
        except (OSError, http.client.HTTPException) as err:
            self.load.record(Call(endpoint, 0, time.perf_counter() - t0, f"{type(err).__name__}: {err}"))
            return 0, b""
        finally:
            conn.close()
        self.load.record(Call(endpoint, status, time.perf_counter() - t0))
        return status, data

    def submit(self, sub: Submission, deadline: float) -> Answer:
        full: list[str] = []
        while True:
            status, data = self.call("POST", "/api/jobs", "POST /api/jobs", sub.body, dict(sub.headers))
            try:
                reply = json.loads(data) if data else {}
            except ValueError:
                reply = {"error": f"not JSON: {data[:80]!r}"}
            if status == 503 and time.monotonic() < deadline:
                full.append(str(reply.get("error", "")))
                time.sleep(0.5)
                continue
            return Answer(sub, status, reply, full)


def _snapshot(root: Path, skip: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` but those under ``skip``: (size, mtime) of files, (-1, 0) of folders."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        if d == skip or skip in d.parents:
            dirnames[:] = []
            continue
        for name in dirnames:
            if d / name != skip:
                out[str(d / name)] = (-1, 0)
        for name in filenames:
            st = (d / name).lstat()
            out[str(d / name)] = (st.st_size, st.st_mtime_ns)
    return out


def _escaped(root: Path) -> list[str]:
    """Files the climbing upload names point at, wherever they landed."""
    places = [root, root.parent, Path("/tmp"), Path.cwd(), REPO]
    return sorted({str(p) for d in places if d.is_dir() for p in d.glob(f"*{ESCAPE}*")})


def start_server(root: Path, max_waiting: int, log_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    cmd = [
        sys.executable,
        "-m",
        "facevox.cli",
        "--log-level",
        "INFO",
        "serve",
        "--model",
        str(root / "pipe"),
        "--out",
        str(root / "work"),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--max-waiting",
        str(max_waiting),
    ]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    log = log_path.open("wb")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300  # torch import and model load on a busy machine
    while time.monotonic() < deadline:
        if m := re.search(r"http://127\.0\.0\.1:(\d+)/", log_path.read_text(errors="replace")):
            return proc, int(m[1])
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the server did not start within 300 s")


def _percentiles(seconds: list[float]) -> dict[str, float]:
    a = np.asarray(seconds) * 1000
    return {
        "n": len(a),
        "p50_ms": round(float(np.percentile(a, 50)), 1),
        "p95_ms": round(float(np.percentile(a, 95)), 1),
        "max_ms": round(float(a.max()), 1),
    }


def run(out: Path, n: int = 200, clients: int = 4, max_waiting: int = 8, seed: int = 0) -> dict[str, Any]:
    """Run the load and return the report (figures and the list of failed checks)."""
    if out.exists():
        shutil.rmtree(out)
    root = out / "root"
    make_pipeline_dir(root / "pipe")
    inputs = make_inputs(out / "inputs")
    plan = submissions(inputs, n, seed)
    work = root / "work"
    before = _snapshot(root, work)
    escaped_before = _escaped(root)
    proc, port = start_server(root, max_waiting, out / "server.log")
    load = Load()
    t_start = time.perf_counter()
    try:
        todo = list(enumerate(plan))
        todo_lock = threading.Lock()
        done_submitting = threading.Event()

        def monitor() -> None:
            client = Client(port, load)
            while not done_submitting.is_set():
                status, data = client.call("GET", "/api/jobs", "GET /api/jobs")
                if status == 200:
                    waiting = sum(j["state"] == "queued" for j in json.loads(data)["jobs"])
                    load.max_waiting_seen = max(load.max_waiting_seen, waiting)
                time.sleep(0.2)

        def submitter() -> None:
            client = Client(port, load)
            while True:
                with todo_lock:
                    if not todo:
                        return
                    _, sub = todo.pop()
                answer = client.submit(sub, deadline=time.monotonic() + 600)
                with load.lock:
                    load.answers.append(answer)

        mon = threading.Thread(target=monitor, daemon=True)
        mon.start()
        threads = [threading.Thread(target=submitter) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        t_submitted = time.perf_counter()
        # every accepted job to its end, then its clip
        accepted = [a for a in load.answers if a.status == 202]
        ends: dict[str, dict[str, Any]] = {}
        ends_lock = threading.Lock()
        chunks = [accepted[k::clients] for k in range(clients)]

        def poller(mine: list[Answer]) -> None:
            client = Client(port, load)
            deadline = time.monotonic() + 1200
            for a in mine:
                job = a.reply
                while job.get("state") not in END_STATES and time.monotonic() < deadline:
                    time.sleep(0.25)
                    status, data = client.call("GET", f"/api/jobs/{a.reply['id']}", "GET /api/jobs/ID")
                    if status == 200:
                        job = json.loads(data)
                if job.get("state") == "done":
                    status, data = client.call("GET", job["video"], "GET /jobs/ID/clip.mp4")
                    job = {
                        **job,
                        "clip_status": status,
                        "clip_bytes": len(data),
                        "clip_is_mp4": data[4:8] == b"ftyp",
                    }
                with ends_lock:
                    ends[a.reply["id"]] = job

        pollers = [threading.Thread(target=poller, args=(c,)) for c in chunks]
        for t in pollers:
            t.start()
        for t in pollers:
            t.join()
        done_submitting.set()
        mon.join()
        t_end = time.perf_counter()
        # climbing GETs: none may reach a file outside the job folders
        probe = Client(port, load)
        traversal_gets = {
            path: probe.call("GET", path, "GET traversal")[0]
            for path in (
                "/jobs/../../pipe/pipeline.json",
                "/jobs/%2e%2e/%2e%2e/pipe/pipeline.json",
                "/api/jobs/../../../etc/passwd",
                "/../pipe/pipeline.json",
            )
        }
        listing_status, listing = probe.call("GET", "/api/jobs", "GET /api/jobs")
        listed = {j["id"] for j in json.loads(listing)["jobs"]} if listing_status == 200 else set()
        page_status, _ = probe.call("GET", "/", "GET /")
        alive = proc.poll() is None
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # the CLI stops on Ctrl-C
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    server_log = (out / "server.log").read_text(errors="replace")
    after = _snapshot(root, work)
    escaped = sorted(set(_escaped(root)) - set(escaped_before))
    job_dirs = {p.name for p in (work / "jobs").iterdir()} if (work / "jobs").is_dir() else set()

    # the figures
    by_endpoint: dict[str, list[float]] = defaultdict(list)
    for c in load.calls:
        if c.status:
            key = f"{c.endpoint} -> {c.status}" if c.endpoint.startswith("POST") else c.endpoint
            by_endpoint[key].append(c.seconds)
            if c.endpoint.startswith("POST"):
                by_endpoint["POST /api/jobs (all answers)"].append(c.seconds)
    outcomes = Counter(f"{a.submission.kind} -> {a.status}" for a in load.answers)
    job_states = Counter(f"{j['state']}" for j in ends.values())
    full_messages = [m for a in load.answers for m in a.queue_full]
    accepted_ids = {a.reply["id"] for a in load.answers if a.status == 202}

    # the checks
    failures = []
    unanswered = [c for c in load.calls if c.status == 0]
    if unanswered:
        failures.append(
            f"{len(unanswered)} calls got no HTTP answer: {sorted({c.error for c in unanswered})[:3]}"
        )
    if not alive or page_status != 200:
        failures.append(f"the server is down at the end (alive {alive}, page {page_status})")
    if "Traceback" in server_log or "Exception occurred" in server_log:
        failures.append("the server logged an exception (see server.log)")
    if load.max_waiting_seen > max_waiting:
        failures.append(f"{load.max_waiting_seen} jobs waited, more than --max-waiting {max_waiting}")
    if len(load.answers) != len(plan):
        failures.append(f"{len(load.answers)} of {len(plan)} submissions answered")
    for a in load.answers:
        k = a.submission.kind
        ok = {
            "valid": a.status == 202,
            "job_error": a.status == 202,
            "invalid": a.status == 400 and bool(a.reply.get("error")),
            "oversized": a.status == 413 and "limit" in a.reply.get("error", ""),
            "traversal": a.status == 202 or (a.status == 400 and bool(a.reply.get("error"))),
        }[k]
        if not ok:
            failures.append(f"{k} ({a.submission.what}) answered {a.status}: {a.reply}")
    for job_id, job in ends.items():
        if job.get("state") == "done" and not (job.get("clip_status") == 200 and job.get("clip_is_mp4")):
            failures.append(f"job {job_id} done but its clip is not served: {job}")
        elif job.get("state") == "error" and not job.get("error"):
            failures.append(f"job {job_id} failed without a message")
        elif job.get("state") not in END_STATES:
            failures.append(f"job {job_id} did not end: {job.get('state')}")
    kinds = {a.reply["id"]: a.submission.kind for a in load.answers if a.status == 202}
    wrong_end = [
        j
        for j, job in ends.items()
        if (kinds[j] == "job_error") != (job.get("state") == "error" and "no face" in job.get("error", ""))
    ]
    if wrong_end:
        failures.append(
            f"{len(wrong_end)} jobs ended otherwise than expected: {[ends[j] for j in wrong_end][:2]}"
        )
    if listed != accepted_ids or job_dirs != accepted_ids:
        failures.append(
            f"jobs listed / on disk differ from those accepted ({len(listed)} / {len(job_dirs)} / {len(accepted_ids)})"
        )
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    if changed:
        failures.append(f"written outside the work folder: {changed[:5]}")
    if escaped:
        failures.append(f"climbing upload names escaped: {escaped[:5]}")
    if any(s not in (404, 400) for s in traversal_gets.values()):
        failures.append(f"a climbing GET was served: {traversal_gets}")
    if not full_messages and n >= 100:
        failures.append("the queue never filled: the bound was not exercised")
    if any("queue is full" not in m for m in full_messages):
        failures.append(f"a 503 without the queue-full message: {sorted(set(full_messages))[:3]}")

    return {
        "submissions": len(plan),
        "clients": clients,
        "max_waiting": max_waiting,
        "submission_mix": dict(Counter(s.kind for s in plan)),
        "answers": dict(sorted(outcomes.items())),
        "queue_full_answers": len(full_messages),
        "queue_full_message": full_messages[0] if full_messages else "",
        "max_jobs_waiting_seen": load.max_waiting_seen,
        "jobs_accepted": len(accepted_ids),
        "job_end_states": dict(job_states),
        "latency": {k: _percentiles(v) for k, v in sorted(by_endpoint.items())},
        "calls": len(load.calls),
        "traversal_gets": traversal_gets,
        "seconds_submitting": round(t_submitted - t_start, 1),
        "seconds_total": round(t_end - t_start, 1),
        "failures": failures,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="work folder for this run (emptied first)")
    p.add_argument("--submissions", type=int, default=200)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--max-waiting", type=int, default=8, help="the server's queue bound")
    p.add_argument("--seed", type=int, default=0, help="shuffles the submissions")
    p.add_argument("--json", type=Path, help="also write the report here")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    report = run(args.out, args.submissions, args.clients, args.max_waiting, args.seed)
    print("| API call | n | p50 ms | p95 ms | max ms |\n|---|---|---|---|---|")
    for name, lat in report["latency"].items():
        print(f"| {name} | {lat['n']} | {lat['p50_ms']} | {lat['p95_ms']} | {lat['max_ms']} |")
    print(json.dumps({k: v for k, v in report.items() if k != "latency"}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    for failure in report["failures"]:
        print("FAIL", failure)
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
