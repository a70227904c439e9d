"""Run public releases through facevox: the official Identity-as-Presence release (``docs/release.md``)
and DreamID-Omni (``docs/models.md``)."""

from facevox.release.dreamid_captions import (
    DreamIDCaptionError,
    TimestampPastClipError,
    TooManyPeopleError,
    dreamid_prompt,
    from_dreamid_caption,
    to_dreamid_caption,
)
from facevox.release.dreamid_omni import (
    DREAMID_OMNI_SETTINGS,
    DreamIDOmniError,
    checkpoint_family,
    dreamid_omni_config,
    load_dreamid_omni_model,
)
from facevox.release.loader import (
    RELEASE_SETTINGS,
    ReleaseError,
    check_layout,
    load_release,
    load_release_model,
)

__all__ = [
    "DREAMID_OMNI_SETTINGS",
    "RELEASE_SETTINGS",
    "DreamIDCaptionError",
    "DreamIDOmniError",
    "ReleaseError",
    "TimestampPastClipError",
    "TooManyPeopleError",
    "check_layout",
    "checkpoint_family",
    "dreamid_omni_config",
    "dreamid_prompt",
    "from_dreamid_caption",
    "load_dreamid_omni_model",
    "load_release",
    "load_release_model",
    "to_dreamid_caption",
]
