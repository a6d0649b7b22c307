from __future__ import annotations

from dataclasses import dataclass
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


def _shared_set(name: str) -> Path:
    path = SHARED / "data" / name
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture(scope="session")
def mlfw_dev() -> Path:
    """The MLFW subset in ../shared/data (skip when absent)."""
    return _shared_set("mlfw-dev")


@pytest.fixture(scope="session")
def m2fred_dev() -> Path:
    """The M2FRED face crops in ../shared/data (skip when absent)."""
    return _shared_set("m2fred-dev")


@pytest.fixture(scope="session")
def rmfrd_dev() -> Path:
    """The RMFRD photos in ../shared/data (skip when absent)."""
    return _shared_set("rmfrd-dev")


@pytest.fixture(scope="session")
def reference_layers() -> Path:
    if not REFERENCE_LAYERS.is_file():
        pytest.skip(f"{REFERENCE_LAYERS} is absent")
    return REFERENCE_LAYERS


TINY_PROFILE = """\
# a tiny offline study: generated sample, random init, one setting, one epoch
weights: null
optimizer: adam
learning_rate: 1.0e-03
epochs: 1
batch_size: 8
trainable_layers: [10]
sample_subjects: 5
bootstrap_resamples: 50
gradcam_images: 1
"""

#: the files of a study whose bytes another executor must reproduce
STUDY_BYTES = ("partition/train.csv", "partition/val.csv", "partition/test.csv",
               "baseline/distances.csv", "baseline/embeddings/embeddings.npy",
               "train_N10/history.csv", "train_N10/distances.csv",
               "train_N10/embeddings/embeddings.npy", "evaluation/metrics.json",
               "pairs/table_5_2.csv")


@dataclass
class TinyStudy:
    profile: Path
    out: Path
    files: dict[str, bytes]  # STUDY_BYTES as the study first wrote them


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory) -> TinyStudy:
    """The tiny study, run once per session by the local executor (`mfr study`). Tests may
    change its folder; `files` keeps the bytes it first wrote."""
    from mfr.cli import main

    base = tmp_path_factory.mktemp("study")
    profile = base / "tiny.yaml"
    profile.write_text(TINY_PROFILE)
    out = base / "out"
    assert main(["study", "--profile", str(profile), "--out", str(out), "--no-progress"]) == 0
    return TinyStudy(profile, out, {rel: (out / rel).read_bytes() for rel in STUDY_BYTES})


@pytest.fixture(scope="module")
def parted(tmp_path_factory):
    """A small synthetic RMFRD tree and its partition (made by `mfr partition`), once per
    module that asks for it."""
    from mfr.cli import main
    from mfr.data.datasets.synthetic import make_demo_tree

    base = tmp_path_factory.mktemp("parted")
    tree = make_demo_tree(base / "tree", n_subjects=5, image_size=64)
    assert main(["partition", "--data-root", str(tree), "--out", str(base / "pairs")]) == 0
    return tree, base / "pairs"
