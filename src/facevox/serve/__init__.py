"""``facevox serve``: a small local web page over :class:`facevox.pipeline.FacevoxPipeline`."""

from facevox.serve.jobs import Job, JobRunner
from facevox.serve.server import make_server

__all__ = ["Job", "JobRunner", "make_server"]
