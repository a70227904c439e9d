"""The synthetic talking world: procedural people (face + voice) and their dialogue clips."""
