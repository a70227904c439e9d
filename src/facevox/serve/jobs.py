"""Generation jobs of the web page: uploads -> a checked request -> one worker thread -> mp4.

Uploads arrive as JSON (``{"people": [{"name", "faces": [{"filename", "data"}], "voice": {...}}],
"script", "duration", "seed", "steps"}``, file data base64). Each job owns ``WORK/jobs/ID/``: the
uploads under ``inputs/``, the pipeline's atomic ``clip.mp4`` + ``clip.json`` under ``out/`` and its
state in ``job.json`` (written atomically at each change of state), so a server started again on the
same folder lists the earlier jobs and serves their clips; a job the server stopped in the middle of
is listed as failed, with that reason. The request is checked (names, script, duration) before the
job is queued, so a bad page submission is answered at once and nothing is queued; jobs run one at a
time, in submission order.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import logging
import queue
import re
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facevox.io.atomic import atomic_write_bytes, atomic_write_json
from facevox.pipeline import FacevoxPipeline, GenerationRequest, Person, RequestError
from facevox.pipeline.pipeline import GenerateConfig

log = logging.getLogger(__name__)

MAX_STEPS = 64  # the page is for trying things out; long runs belong to `facevox generate`
MAX_WAITING = 16  # jobs queued behind the running one; more are refused until one finishes


class QueueFullError(RequestError):
    """The queue holds ``max_waiting`` jobs already; nothing was written (HTTP 503)."""


@dataclass
class Job:
    id: str
    steps: int
    state: str = "queued"  # queued | running | done | error
    phase: str = ""  # while running: one of facevox.pipeline.pipeline.PHASES
    step: int = 0
    error: str = ""
    people: list[str] = field(default_factory=list)
    script: str = ""
    duration: float = 0.0
    created: float = 0.0  # seconds since the epoch
    video: Path | None = None
    sidecar: dict[str, Any] = field(default_factory=dict)
    uploaded_as: dict[str, str] = field(default_factory=dict)  # saved upload path -> name it came as

    def public(self) -> dict[str, Any]:
        """What the page polls (and what ``job.json`` keeps)."""
        out = {
            "id": self.id,
            "state": self.state,
            "phase": self.phase,
            "step": self.step,
            "steps": self.steps,
            "error": self.error,
            "people": self.people,
            "script": self.script,
            "duration": self.duration,
            "created": self.created,
        }
        if self.video is not None:
            out["video"] = f"/jobs/{self.id}/{self.video.name}"
            out["sidecar"] = f"/jobs/{self.id}/{self.video.with_suffix('.json').name}"
            out["timings"] = self.sidecar.get("timings", {})
        return out


def _suffix(filename: str, default: str) -> str:
    s = Path(filename).suffix.lower()
    return s if re.fullmatch(r"\.[a-z0-9]{1,5}", s) else default


def _decode(upload: Any, what: str) -> bytes:
    if not isinstance(upload, dict) or not isinstance(upload.get("data"), str):
        raise RequestError(f"{what}: no file uploaded")
    try:
        data = base64.b64decode(upload["data"], validate=True)
    except (binascii.Error, ValueError) as e:
        raise RequestError(f"{what}: the upload is not valid base64 ({e})") from e
    if not data:
        raise RequestError(f"{what}: the uploaded file is empty")
    return data


class JobRunner:
    """Queue of generation jobs over one pipeline, run by one worker thread."""

    def __init__(
        self,
        pipe: FacevoxPipeline,
        work_dir: str | Path,
        *,
        config: GenerateConfig | None = None,
        max_waiting: int = MAX_WAITING,
    ):
        self.pipe, self.work, self.max_waiting = pipe, Path(work_dir), max_waiting
        self._submit_lock = threading.Lock()  # one submission at a time checks and joins the queue
        self.config = config or GenerateConfig()
        self.jobs: dict[str, Job] = self._earlier_jobs()
        self._queue: queue.Queue[tuple[Job, GenerationRequest, Path]] = queue.Queue()
        self._worker = threading.Thread(target=self._loop, name="facevox-serve-worker", daemon=True)
        self._worker.start()

    def submit(self, payload: dict[str, Any]) -> Job:
        """Save the uploads, check the request (RequestError if bad: nothing queued) and queue it."""
        if not isinstance(payload, dict):
            raise RequestError("the request body must be a JSON object")
        people_in = payload.get("people")
        if not isinstance(people_in, list) or not people_in:
            raise RequestError("add at least one person (a name, face images and a voice recording)")
        try:
            steps = int(payload.get("steps", self.config.steps))
            duration = float(payload.get("duration", 1.0))
            seed = int(payload.get("seed", 0))
        except (TypeError, ValueError, OverflowError) as e:
            raise RequestError(f"steps, duration and seed must be numbers ({e})") from e
        if not 1 <= steps <= MAX_STEPS:
            raise RequestError(f"steps must be in 1..{MAX_STEPS}, got {steps}")
        script = payload.get("script")
        if not isinstance(script, str) or not script.strip():
            raise RequestError("write a script, e.g. '[alice] Hello there.'")
        with self._submit_lock:
            waiting = sum(j.state == "queued" for j in self.jobs.values())
            if waiting >= self.max_waiting:
                raise QueueFullError(
                    f"the queue is full ({waiting} jobs waiting, at most {self.max_waiting}); "
                    "submit again when one has finished"
                )
            return self._queue_job(people_in, script, steps, duration, seed)

    def _queue_job(self, people_in: list[Any], script: str, steps: int, duration: float, seed: int) -> Job:
        """Decode, save and check the uploads of a submission whose fields were read, and queue it."""
        # decode every upload before writing any of them
        job_id = uuid.uuid4().hex[:12]
        files: dict[str, bytes] = {}
        names: dict[str, str] = {}  # saved file -> the name it was uploaded as, for messages
        people = []
        for k, p in enumerate(people_in):
            name = str(p.get("name", "")).strip() if isinstance(p, dict) else ""
            if not name:
                raise RequestError(f"person {k + 1} has no name")
            faces_in = p.get("faces") or []
            if not isinstance(faces_in, list) or not faces_in:
                raise RequestError(f"person {name!r}: upload at least one face image")
            faces = []
            for i, f in enumerate(faces_in):
                data = _decode(f, f"person {name!r} face {i + 1}")  # f is an upload object from here on
                rel = f"face_{k}_{i}{_suffix(str(f.get('filename', '')), '.png')}"
                files[rel] = data
                names[rel] = str(f.get("filename") or rel)
                faces.append(rel)
            voice = p.get("voice")
            data = _decode(voice, f"person {name!r} voice")
            rel_v = f"voice_{k}{_suffix(str(voice.get('filename', '')), '.wav')}"
            files[rel_v] = data
            names[rel_v] = str(voice.get("filename") or rel_v)
            people.append((name, faces, rel_v))
        # the uploads land in a staging folder renamed into place; a request that fails its
        # check (unknown speaker, too long...) removes the job folder again: nothing is left
        root = self.work / "jobs" / job_id
        staging = self.work / "jobs" / f".staging-{job_id}"
        for rel, data in files.items():
            atomic_write_bytes(staging / "inputs" / rel, data)
        staging.rename(root)
        inputs = root / "inputs"
        try:
            req = GenerationRequest(
                name="clip",
                people=tuple(
                    Person(name=n, faces=tuple(str(inputs / f) for f in fs), voice=str(inputs / v))
                    for n, fs, v in people
                ),
                script=script,
                duration=duration,
                seed=seed,
            )
            self.pipe.check(req)  # names, script speakers, duration: before any heavy work
        except RequestError:
            shutil.rmtree(root)
            raise
        job = Job(
            id=job_id,
            steps=steps,
            people=[n for n, _, _ in people],
            script=script,
            duration=duration,
            created=time.time(),
            uploaded_as={str(inputs / rel): original for rel, original in names.items()},
        )
        self.jobs[job_id] = job
        self._save(job)
        self._queue.put((job, req, root / "out"))
        log.info("queued job %s (%d people, %.1f s, %d steps)", job_id, len(people), duration, steps)
        return job

    def listing(self) -> list[dict[str, Any]]:
        """Every job this folder holds, newest first."""
        return [j.public() for j in sorted(self.jobs.values(), key=lambda j: j.created, reverse=True)]

    def _save(self, job: Job) -> None:
        atomic_write_json(self.work / "jobs" / job.id / "job.json", job.public())

    def _earlier_jobs(self) -> dict[str, Job]:
        """Jobs of an earlier server on the same folder (``job.json``); those it left unfinished are
        failed with that reason. An unreadable ``job.json`` is skipped with a warning."""
        jobs: dict[str, Job] = {}
        for path in sorted((self.work / "jobs").glob("*/job.json")):
            try:
                d = json.loads(path.read_text())
                job = Job(
                    id=str(d["id"]),
                    steps=int(d["steps"]),
                    state=str(d["state"]),
                    step=int(d.get("step", 0)),
                    error=str(d.get("error", "")),
                    people=[str(n) for n in d.get("people", [])],
                    script=str(d.get("script", "")),
                    duration=float(d.get("duration", 0.0)),
                    created=float(d.get("created", 0.0)),
                )
            except (OSError, ValueError, KeyError, TypeError) as e:
                log.warning("skipping %s: not a readable job record (%s)", path, e)
                continue
            video = path.parent / "out" / "clip.mp4"
            if job.state == "done" and video.is_file():
                job.video = video
                side = video.with_suffix(".json")
                job.sidecar = json.loads(side.read_text()) if side.is_file() else {}
            elif job.state != "error":
                job.state, job.error = "error", "interrupted: the server stopped before this job finished"
                self._save(job)
            jobs[job.id] = job
        return jobs

    def file(self, job_id: str, name: str) -> Path | None:
        """A finished job's output file (``clip.mp4`` / ``clip.json``), else None."""
        job = self.jobs.get(job_id)
        if (
            job is None
            or job.video is None
            or name not in (job.video.name, job.video.with_suffix(".json").name)
        ):
            return None
        return job.video.parent / name

    def _loop(self) -> None:
        while True:
            job, req, out = self._queue.get()
            job.state = "running"

            def progress(i: int, n: int, job: Job = job) -> None:
                job.step = i

            def phase(name: str, job: Job = job) -> None:
                job.phase = name

            try:
                self._save(job)  # inside: a failed write fails this job, not the worker
                cfg = dataclasses.replace(self.config, steps=job.steps)
                res = self.pipe(req, out, config=cfg, callback=progress, on_phase=phase)
                job.video, job.sidecar, job.state, job.phase = res.video_path, res.sidecar, "done", ""
                log.info("job %s done in %.1f s", job.id, res.sidecar["timings"]["total_s"])
            except RequestError as e:  # a face with no face, a silent voice...: the page shows it
                message = str(e)
                for path, original in job.uploaded_as.items():  # the page knows the names it sent
                    message = message.replace(path, repr(original))
                job.error, job.state = message, "error"
            except Exception as e:  # noqa: BLE001 - keep serving; the page shows the failure
                log.exception("job %s failed", job.id)
                job.error, job.state = f"{type(e).__name__}: {e}", "error"
            finally:
                try:
                    self._save(job)
                except OSError:  # a full disk must not stop the worker; the page still has the state
                    log.exception("job %s: could not write job.json", job.id)
                self._queue.task_done()
