"""Inference: references + a script -> a talking mp4 with speech (``FacevoxPipeline``)."""

from facevox.pipeline.pipeline import FacevoxPipeline, GenerationResult
from facevox.pipeline.request import GenerationRequest, Person, RequestError

__all__ = ["FacevoxPipeline", "GenerationRequest", "GenerationResult", "Person", "RequestError"]
