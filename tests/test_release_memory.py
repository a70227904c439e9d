"""The memory plan of the release (``python -m facevox.release.memory``): weights counted from the
configs on the meta device, activations by formula, the first plan that fits each GPU size."""

from __future__ import annotations

import pytest

from facevox.release.memory import GIB, RESERVE_GIB, Component, components, memory_table, plans


def test_the_cheapest_plan_that_fits_is_chosen() -> None:
    parts = [
        Component("text", 5 * GIB // 2, GIB // 10),
        Component("towers", 15 * GIB // 2, 4 * GIB),
        Component("vae", GIB // 2, 2 * GIB),
        Component("audio", GIB // 4, 0),
    ]
    by_name = {p.name: p for p in plans(parts, depth=30)}
    assert by_name["resident"].peak_bytes == (5 + 15 + 1 + 0.5) * GIB + 4 * GIB
    assert by_name["offload"].peak_bytes == 15 * GIB + 4 * GIB  # the towers' stage
    assert not by_name["stream"].implemented
    rows = {r["gpu_gib"]: r for r in memory_table((8, 24, 40), parts)}
    assert (rows[8]["plan"], rows[24]["plan"], rows[40]["plan"]) == ("stream", "offload", "resident")
    assert rows[40]["peak_gib"] == round(25.5 + RESERVE_GIB, 1)
    assert memory_table((1,), parts)[0]["plan"] == "none"


@pytest.mark.slow  # builds iap-5b, umT5-XXL, the Wan2.2 VAE and MMAudio on meta (~15 s)
def test_release_plan_on_24_48_80() -> None:
    parts = components("iap-5b", 704, 1280, 121, variants=3)
    assert [c.params for c in parts] == [5_680_910_336, 15_437_279_444, 704_688_668, 283_888_468]
    rows = {r["gpu_gib"]: r for r in memory_table((24, 48, 80), parts)}
    assert rows[80]["plan"] == "resident" and rows[48]["plan"] == "offload"
    # 24 GB: nothing implemented fits
    assert rows[24]["plan"] == "stream" and rows[24]["implemented"] is False
