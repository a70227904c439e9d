"""Speaker and reference tags of the structured caption, and which identity slot each token is in.

Paper caption format (arXiv 2603.17889): person k's appearance is wrapped ``<REF_k_S> … <REF_k_E>``
and each line person k speaks ``<Sk> … <Ek>``; a single unattributed speaker uses ``<S> … <E>``.
Tag numbers start at 1; identity slots start at 0 (``<S1>`` binds to slot 0, as the world's
ground truth numbers slots).
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_SLOTS = 8  # tag numbers 1..MAX_SLOTS


def caption_tags(max_slots: int = MAX_SLOTS) -> tuple[str, ...]:
    """Every tag the tokenizer must keep whole: ``<S>``, ``<E>``, then per slot Sk/Ek/REF_k_S/REF_k_E."""
    tags = ["<S>", "<E>"]
    for k in range(1, max_slots + 1):
        tags += [f"<S{k}>", f"<E{k}>", f"<REF_{k}_S>", f"<REF_{k}_E>"]
    return tuple(tags)


def tag_roles(max_slots: int = MAX_SLOTS) -> dict[str, tuple[int, bool]]:
    """tag -> (slot, opens); the unattributed ``<S>``/``<E>`` have slot -1."""
    roles = {"<S>": (-1, True), "<E>": (-1, False)}
    for k in range(1, max_slots + 1):
        roles[f"<S{k}>"] = (k - 1, True)
        roles[f"<E{k}>"] = (k - 1, False)
        roles[f"<REF_{k}_S>"] = (k - 1, True)
        roles[f"<REF_{k}_E>"] = (k - 1, False)
    return roles


def tag_phrase(tag: str) -> str:
    """A plain-words reading of a tag, used to initialise its new embedding row deterministically."""
    roles = tag_roles(64)
    if tag not in roles:
        raise ValueError(f"{tag!r} is not a caption tag")
    slot, opens = roles[tag]
    edge = "begins" if opens else "ends"
    if slot < 0:
        return f"speech {edge}"
    if tag.startswith("<REF_"):
        return f"appearance of person {slot + 1} {edge}"
    return f"speech of speaker {slot + 1} {edge}"


def slot_ids(tokens: Sequence[str], roles: dict[str, tuple[int, bool]]) -> list[int]:
    """Per token, the identity slot whose tags enclose it (tags included), else -1.

    A closing tag that does not match the open one, or a tag opened inside another, raises
    ValueError; a tag left open at the end (a truncated caption) runs to the end.
    """
    out: list[int] = []
    current: int | None = None
    open_tag = ""
    for tok in tokens:
        role = roles.get(tok)
        if role is None:
            out.append(-1 if current is None else current)
            continue
        slot, opens = role
        if opens:
            if current is not None:
                raise ValueError(f"caption tag {tok} opens inside {open_tag}")
            current, open_tag = slot, tok
            out.append(slot)
        else:
            if current != slot:
                raise ValueError(f"caption tag {tok} closes {open_tag or 'nothing'}")
            out.append(slot)
            current, open_tag = None, ""
    return out
