"""File and media input/output shared by every stage: atomic writes, mp4 read/write."""
