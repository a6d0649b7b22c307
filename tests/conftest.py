from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
MFR2_DEV = SHARED / "data" / "mfr2-dev"
REFERENCE_LAYERS = SHARED / "reference" / "senet50_vggface2_layers.json"


@pytest.fixture(scope="session")
def mfr2_dev() -> Path:
    """The real MFR2 photos in ../shared/data (skip when absent, as on a user's clone)."""
    if not MFR2_DEV.is_dir():
        pytest.skip(f"{MFR2_DEV} is absent")
    return MFR2_DEV


@pytest.fixture(scope="session")
def reference_layers() -> Path:
    if not REFERENCE_LAYERS.is_file():
        pytest.skip(f"{REFERENCE_LAYERS} is absent")
    return REFERENCE_LAYERS
