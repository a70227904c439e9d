"""A running ``facevox serve`` (random debug pipeline) on a free local port, for the serve tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from facevox.pipeline import FacevoxPipeline
from facevox.pipeline.pipeline import GenerateConfig
from facevox.serve import JobRunner, make_server
from pipeline_fixtures import make_pipeline_dir


@contextmanager
def running_server(tmp: Path) -> Iterator[tuple[str, JobRunner]]:
    pipe = FacevoxPipeline.from_pretrained(make_pipeline_dir(tmp / "pipe"))
    runner = JobRunner(pipe, tmp / "work", config=GenerateConfig(solver="euler"))
    server = make_server(runner, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", runner
    finally:
        server.shutdown()
        server.server_close()
