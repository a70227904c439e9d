"""Atomic writes: a file appears whole under its final name or not at all.

Every write goes to a temporary sibling, is flushed and fsynced, then renamed over the target
(``os.replace`` is atomic on POSIX within one file system). A process killed mid-write leaves that
sibling (``.{name}.{random}{suffix}``) behind; :func:`partial_writes` finds them for a resume to remove.
safetensors (>= 0.7) itself writes through a sibling named by Rust's ``tempfile`` crate
(``.tmp`` + 6 random characters) before renaming it onto the name it was given; a kill in between
leaves that one too, and :func:`partial_writes` finds it as well.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# the temporary sibling of atomic_path: "." + target name + "." + mkstemp's 8 random characters + suffix
_PARTIAL = re.compile(r"\..+\.[a-z0-9_]{8}(\.[^.]*)?")
# the temporary that safetensors' save_file (Rust tempfile crate) writes next to its target
_SAFETENSORS_PARTIAL = re.compile(r"\.tmp[A-Za-z0-9]{6}")


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``.

    On an exception the temporary file is removed and ``path`` is left untouched. ``suffix``
    defaults to the target's own suffix so that libraries that pick a format from the file
    name (PyAV, soundfile) still do so.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=suffix if suffix is not None else path.suffix, dir=path.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with tmp_path.open("rb+") as fh:
            os.fsync(fh.fileno())
        tmp_path.replace(path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def partial_writes(folder: str | Path, name: str = "*") -> list[Path]:
    """The temporary files that atomic writes into ``folder`` (of the file ``name``: all by default)
    left when their process was killed mid-write; safe to delete once no writer runs.

    With ``name="*"`` this includes safetensors' own unnamed temporaries (``.tmpXXXXXX``)."""
    found = {p for p in Path(folder).glob(f".{name}.*") if p.is_file() and _PARTIAL.fullmatch(p.name)}
    if name == "*":
        found |= {
            p for p in Path(folder).glob(".tmp*") if p.is_file() and _SAFETENSORS_PARTIAL.fullmatch(p.name)
        }
    return sorted(found)
