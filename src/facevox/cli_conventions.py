"""The one argument convention of every ``facevox`` verb, and the old spellings it replaces.

    facevox VERB [INPUT ...] --out FOLDER [--recipe YAML] [--flag ...] [key=value ...]

Inputs are positional, the folder a verb writes is ``--out``, a recipe is ``--recipe`` and config
fields are ``key=value`` after them. The spellings used before (a positional output folder for
``synth`` / ``curate`` / ``encode`` / ``demo``, ``data=`` / ``out=`` overrides for ``train``,
``--data`` for ``train-codec``, ``--work`` for ``serve``, ``--model-dir`` for ``generate``) keep
working for one release and log a deprecation message naming the new spelling.
"""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger("facevox")

REMOVED_IN = "0.3"  # the release that drops the old spellings
# optional positionals (``train`` / ``train-codec`` DATA, the old positional output folder) to which
# argparse hands the first ``key=value`` when it comes before the options: `VERB IN k=v --out OUT`
OPTIONAL_POSITIONALS = ("data", "legacy_out")


class UsageError(ValueError):
    """An argument combination the convention does not allow; the message says what to write."""


def deprecated(verb: str, old: str, new: str) -> None:
    """Log that ``old`` is an old spelling of ``new`` in ``facevox verb``."""
    log.warning(
        "facevox %s: %s is deprecated, write %s (the old spelling goes in facevox %s)",
        verb,
        old,
        new,
        REMOVED_IN,
    )


def add_out(p: argparse.ArgumentParser, help_text: str, *, legacy_positional: bool = False) -> None:
    """``--out FOLDER``; with ``legacy_positional`` also the old trailing positional folder."""
    p.add_argument("--out", help=help_text + " (required)")
    if legacy_positional:
        p.add_argument("legacy_out", nargs="?", metavar="OUT_DIR", help=argparse.SUPPRESS)


def out_folder(args: argparse.Namespace, verb: str) -> str:
    """The output folder from ``--out``, or from the old positional spelling with a deprecation
    message; both at once, or neither, is a :class:`UsageError`."""
    legacy = getattr(args, "legacy_out", None)
    if args.out and legacy:
        raise UsageError(
            f"facevox {verb}: give the output folder once, as --out {args.out} (also got {legacy!r})"
        )
    if legacy:
        deprecated(verb, f"a positional output folder ({legacy})", f"--out {legacy}")
        return str(legacy)
    if not args.out:
        raise UsageError(f"facevox {verb}: --out FOLDER is required (where the results go)")
    return str(args.out)


def looks_like_override(text: str) -> bool:
    """``key=value`` where key is a dotted config field name (never a path: no slash before ``=``)."""
    key, eq, _ = text.partition("=")
    return bool(eq) and bool(key) and all(part.isidentifier() for part in key.split("."))


def collect_overrides(args: argparse.Namespace, extra: list[str]) -> list[str]:
    """Gather every ``key=value`` of a verb's command line into ``args.overrides``, in command-line
    order: one argparse handed to an optional positional (before the options) and those it left
    over (after them). Returns the rest of ``extra``: arguments nobody recognised."""
    if not isinstance(getattr(args, "overrides", None), list):  # a verb without overrides
        return extra
    before = []
    for name in OPTIONAL_POSITIONALS:
        value = getattr(args, name, None)
        if isinstance(value, str) and looks_like_override(value):
            before.append(value)
            setattr(args, name, None)
    after = [e for e in extra if looks_like_override(e)]
    args.overrides = [*before, *args.overrides, *after]
    return [e for e in extra if not looks_like_override(e)]


def pop_override(overrides: list[str], key: str, verb: str, flag: str) -> tuple[list[str], str | None]:
    """Remove the old ``key=value`` spelling of ``flag`` from ``overrides`` (with a deprecation
    message); returns the remaining overrides and the value, or None when absent."""
    rest, value = [], None
    for item in overrides:
        k, eq, v = item.partition("=")
        if eq and k == key:
            deprecated(verb, item, f"{flag} {v}")
            value = v
        else:
            rest.append(item)
    return rest, value
