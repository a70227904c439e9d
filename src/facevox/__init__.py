"""facevox: identity-personalized joint audio-video generation (Identity as Presence)."""

__version__ = "0.1.0"
