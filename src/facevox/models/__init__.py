"""The dual-tower DiT with identity injection (architecture only).

Public entry points: :class:`DualTowerDiT`, :class:`DualTowerConfig`, :func:`get_config`,
the typed inputs :class:`ModalityInput` / :class:`References`, and :class:`ReferenceCache`.
"""

from facevox.models.config import DualTowerConfig, TowerConfig
from facevox.models.dual_tower import DualTowerDiT, DualTowerOutput
from facevox.models.inputs import ModalityInput, References
from facevox.models.reference_cache import ReferenceCache
from facevox.models.registry import SIZES, get_config

__all__ = [
    "SIZES",
    "DualTowerConfig",
    "DualTowerDiT",
    "DualTowerOutput",
    "ModalityInput",
    "ReferenceCache",
    "References",
    "TowerConfig",
    "get_config",
]
