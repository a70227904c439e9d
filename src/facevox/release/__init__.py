"""Run the official Identity-as-Presence release through facevox (``docs/release.md``)."""

from facevox.release.loader import (
    RELEASE_SETTINGS,
    ReleaseError,
    check_layout,
    load_release,
    load_release_model,
)

__all__ = ["RELEASE_SETTINGS", "ReleaseError", "check_layout", "load_release", "load_release_model"]
