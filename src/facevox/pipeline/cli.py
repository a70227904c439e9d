"""``facevox generate --person alice=a.png:a.wav --script "[alice] Hello." --out OUT [--model DIR]``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import cast


def add_arguments(p: argparse.ArgumentParser) -> None:
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--model",
        help="a facevox pipeline folder (a training run's release/, or a model folder with pipeline.json) "
        "or a folder laid out like the Identity-as-Presence release's ckpts/ (docs/release.md, weights "
        "trained single-subject) or DreamID-Omni's (docs/models.md: sampled as its engine, at most 2 people); the log says "
        "which it found. Default: the tiny model shipped in the package",
    )
    source.add_argument("--model-dir", help=argparse.SUPPRESS)  # the old spelling of --model for ckpts/
    p.add_argument(
        "--person",
        action="append",
        default=[],
        metavar="NAME=FACE[,FACE...]:VOICE",
        help="one person: face images (several views allowed) and a voice recording; repeat per person",
    )
    p.add_argument(
        "--box",
        action="append",
        default=[],
        metavar="NAME=X0,Y0,X1,Y1",
        help="where NAME's face is drawn, in fractions of the frame (models that place face references; "
        "default: the layout the model was trained on, people left to right in --person order)",
    )
    p.add_argument("--script", help='"[alice] Hello there. [bob] Hi!" or a structured-caption JSON file')
    p.add_argument("--requests", help="requests.jsonl: a batch of requests (benchmarks)")
    p.add_argument("--out", required=True, help="output folder: NAME.mp4 + NAME.json per request")
    p.add_argument("--name", default="clip", help="output name for a single request")
    p.add_argument("--duration", type=float, default=1.0, help="seconds (default 1.0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, help="pixels (default: the size the model was trained at)")
    p.add_argument("--height", type=int, help="pixels (default: the size the model was trained at)")
    p.add_argument("--steps", type=int, help="solver steps (default 16; 50 for a release ckpts/ folder)")
    p.add_argument("--solver", choices=["unipc", "euler"], help="default unipc")
    p.add_argument(
        "--recipe",
        help="YAML with GenerateConfig fields (solver, steps, shift, video.*, audio.*, guidance, two_pass.*); "
        "default for a release ckpts/ folder: the release's sampling (recipes/release_iap.yaml)",
    )
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="GenerateConfig overrides, e.g. video.faces=2.0 audio.voices=2.5 shift=5",
    )
    p.add_argument("--no-face-references", action="store_true", help="drop the faces (a baseline)")
    p.add_argument("--no-voice-references", action="store_true", help="drop the voices (a baseline)")
    p.add_argument(
        "--no-references", action="store_true", help="drop faces and voices (the no-reference floor)"
    )
    p.add_argument("--offload", action="store_true", help="keep each component on the CPU until it runs")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default: cpu)")
    p.add_argument(
        "--dtype",
        choices=["float32", "bfloat16"],
        help="the towers' dtype (default: float32; bfloat16 for a release ckpts/ folder)",
    )


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm.auto import tqdm

    from facevox.config import load
    from facevox.pipeline import FacevoxPipeline, GenerationRequest, RequestError
    from facevox.pipeline.dreamid import DreamIDGenerateConfig, DreamIDOmniPipeline, model_family
    from facevox.pipeline.pipeline import GenerateConfig
    from facevox.pipeline.request import parse_person, read_requests, with_boxes
    from facevox.release.recipe import RELEASE_RECIPE, is_release_folder

    model_folder = args.model or args.model_dir
    flags = {k: v for k, v in {"solver": args.solver, "steps": args.steps}.items() if v is not None}
    # names and shapes only: a folder of no known family is refused here, naming its first odd tensor
    dreamid = bool(model_folder) and model_family(model_folder) == "dreamid-omni"
    if model_folder and not args.recipe and is_release_folder(model_folder):
        flags = {**RELEASE_RECIPE, **flags}  # the release's own sampling (recipes/release_iap.yaml)
        logging.getLogger(__name__).info("%s is a release checkout: sampling as the release", model_folder)
    cfg: GenerateConfig | DreamIDGenerateConfig = (
        load(DreamIDGenerateConfig, args.recipe, args.overrides, **flags)  # its engine's sampling
        if dreamid
        else load(GenerateConfig, args.recipe, args.overrides, **flags)
    )
    no_faces = args.no_references or args.no_face_references
    no_voices = args.no_references or args.no_voice_references
    if args.requests:  # the flags apply to every request of the file (the floor of a benchmark)
        requests = [
            dataclasses.replace(
                r, use_faces=r.use_faces and not no_faces, use_voices=r.use_voices and not no_voices
            )
            for r in read_requests(args.requests)
        ]
    else:
        if not args.person or not args.script:
            raise RequestError("give --person (one per person) and --script, or --requests FILE")
        script: str | dict = args.script
        if Path(args.script).suffix == ".json" and Path(args.script).is_file():
            script = json.loads(Path(args.script).read_text())
        requests = [
            GenerationRequest(
                name=args.name,
                people=with_boxes(tuple(parse_person(s) for s in args.person), args.box),
                script=script,
                duration=args.duration,
                seed=args.seed,
                width=args.width,
                height=args.height,
                use_faces=not no_faces,
                use_voices=not no_voices,
            )
        ]
    dtype = getattr(torch, args.dtype) if args.dtype else None
    if args.model_dir:
        from facevox.cli_conventions import deprecated

        deprecated("generate", f"--model-dir {args.model_dir}", f"--model {args.model_dir}")
        args.model = args.model_dir
    pipe: FacevoxPipeline | DreamIDOmniPipeline
    if dreamid:
        for r in requests:  # people, caption and speaker times: before any weight is read
            DreamIDOmniPipeline.check_request(r)
        pipe = DreamIDOmniPipeline.from_folder(
            args.model, device=args.device, dtype=dtype or torch.bfloat16, offload=args.offload
        )
    elif args.model:
        pipe = FacevoxPipeline.load(args.model, device=args.device, dtype=dtype, offload=args.offload)
    else:
        pipe = FacevoxPipeline.from_shipped(
            device=args.device, dtype=dtype or torch.float32, offload=args.offload
        )
    logging.getLogger(__name__).info("model: %s", pipe.source)
    for r in requests:  # everything is checked before the first clip is generated
        pipe.check(r)
    for r in requests:
        bar = tqdm(total=cfg.steps, desc=f"generate {r.name}", unit="step")
        on_step = cast("Callable[[int, int], None]", lambda i, n, bar=bar: bar.update(1))
        res = pipe(r, args.out, config=cfg, callback=on_step)  # type: ignore[arg-type]  # cfg fits pipe
        bar.close()
        logging.getLogger(__name__).info(
            "wrote %s (%.1f s)", res.video_path, res.sidecar["timings"]["total_s"]
        )
    return 0
