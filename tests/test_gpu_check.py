"""The prepared GPU check (``benchmarks/gpu_check.py``) runs its code paths on the CPU at toy sizes
(``--device cpu --reduced``); the GPU figures themselves come from ``benchmarks/gpu_check.sh`` on a GPU."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import gpu_check  # noqa: E402


def test_mfu_path_on_cpu_and_the_table(tmp_path: Path) -> None:
    assert (
        gpu_check.main(["--device", "cpu", "--reduced", "--only", "mfu", "--json", str(tmp_path / "r.json")])
        == 0
    )
    r = json.loads((tmp_path / "r.json").read_text())["mfu"]
    assert (
        r["fwd_bwd_tflop"] > 0
        and r["step_s"] > 0
        and 0 < r["mfu_vs_matmul"]
        and r["mfu_vs_datasheet"] is None
    )
    with pytest.raises(SystemExit):  # real sizes need a GPU
        gpu_check.main(["--device", "cpu"])
    g = gpu_check.Geometry(704, 1280, 121)
    assert g.latent == (31, 44, 80) and g.audio_tokens == 158  # 27,280 video tokens after the (1, 2, 2) patch


@pytest.mark.slow  # three checks at toy sizes, ~30 s on a shared core
def test_whole_check_reduced_on_cpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        gpu_check.main(
            ["--device", "cpu", "--reduced", "--gen-steps", "2", "--json", str(tmp_path / "r.json")]
        )
        == 0
    )
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["train_parity"]["ok"] and r["train_parity"]["max_rel_diff"] == 0.0  # cpu against cpu
    assert [g["offload"] for g in r["generation"]] == [True, False]
    assert all(g["frames"] == 9 and g["size"] == "64x64" for g in r["generation"])
    table = capsys.readouterr().out
    assert "training parity" in table and "resident, 2 steps" in table
