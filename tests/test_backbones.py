"""The backbone registry: one module + one line a network; SENet50 and dlib's ResNet port go
through the same build, fine-tuning, run-folder and embedder paths."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from mfr.backbones import BACKBONES, get_backbone
from mfr.core.config import StudyConfig
from mfr.core.errors import InputError

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
RMFRD_DEV = SHARED / "rmfrd-dev" / "self-built-masked-face-recognition-dataset"


def test_every_backbone_states_its_facts():
    keys = {"label", "weights", "input_size", "embedding_size", "n_layers", "gradcam_layer",
            "preprocessing", "settings", "saved_as"}
    for name in BACKBONES:
        facts = get_backbone(name).facts
        assert all(getattr(facts, k, None) not in (None, "") for k in keys - {"settings"}), name
        assert facts.weights.files and facts.weights.name and facts.weights.licence, name
    assert get_backbone("senet50").facts.n_layers == 287
    assert get_backbone("dlib_resnet").facts.n_layers == 109


def test_config_takes_the_backbones_own_defaults():
    c = StudyConfig(backbone="dlib_resnet")
    assert c.weights == "dlib_v1" and c.preprocessing == "dlib"
    assert StudyConfig(backbone="dlib_resnet", weights=None).weights is None
    with pytest.raises(ValueError, match="dlib_resnet takes dlib"):
        StudyConfig(backbone="dlib_resnet", preprocessing="vggface2")
    with pytest.raises(ValueError, match="backbone"):
        StudyConfig(backbone="resnet9000")
    assert StudyConfig().weights == "vggface2" and StudyConfig().preprocessing == "thesis"


def test_n_is_checked_against_the_backbones_layers():
    assert get_backbone("dlib_resnet").check_trainable_layers((4, 109)) == [4, 109]
    with pytest.raises(InputError, match=r"1\.\.109.*dlib_resnet"):
        get_backbone("dlib_resnet").check_trainable_layers((110,))
    assert get_backbone("senet50").check_trainable_layers((287,)) == [287]


def _tiny_rmfrd(tmp_path: Path, subjects: int = 6) -> Path:
    """A copy of a few real RMFRD subjects (both sides), into tmp: never into the project."""
    if not RMFRD_DEV.is_dir():
        pytest.skip(f"{RMFRD_DEV} is absent")
    root = tmp_path / "rmfrd" / RMFRD_DEV.name
    masked = sorted(p.name for p in (RMFRD_DEV / "AFDB_masked_face_dataset").iterdir())
    unmasked = {p.name for p in (RMFRD_DEV / "AFDB_face_dataset").iterdir()}
    picked = [s for s in masked if s in unmasked][:subjects]
    for side in ("AFDB_masked_face_dataset", "AFDB_face_dataset"):
        for s in picked:
            files = sorted((RMFRD_DEV / side / s).iterdir())[:3]
            (root / side / s).mkdir(parents=True)
            for f in files:
                shutil.copy(f, root / side / s / f.name)
    return root


@pytest.mark.backend
def test_dlib_backbone_fine_tunes_and_lr0_gives_the_pretrained_embeddings(tmp_path):
    """The thesis's protocol on the port: the last N layers train (affine frozen), the run
    folder loads back through the registry, and learning rate 0 changes nothing."""
    from mfr.backbones.base import load_run_model
    from mfr.evaluation.embeddings import load_embeddings
    from mfr.study.steps import embed_step, partition_step, train_step

    root = _tiny_rmfrd(tmp_path)
    cfg = StudyConfig(backbone="dlib_resnet", data_root=str(root), image_size=160,
                      optimizer="sgd", learning_rate=0.0, epochs=1, batch_size=8,
                      embed_batch_size=16, max_per_subject=3, train_val_fraction=0.5)
    partition_step(cfg, tmp_path / "pairs")
    base = embed_step(cfg, tmp_path / "pairs", tmp_path / "baseline", split=("val", "test"),
                      progress=False)
    res = train_step(cfg, 8, tmp_path / "pairs", tmp_path / "train_N8",
                     cache_dir=tmp_path / "baseline" / "cache", progress=False)
    assert res.trainable_layers == ["res6a_conv2", "fc"]
    tuned = load_embeddings(tmp_path / "train_N8" / "embeddings")
    rows = [base.embeddings.paths.index(p) for p in tuned.paths]
    np.testing.assert_allclose(tuned.vectors, base.embeddings.vectors[rows], atol=2e-6)
    # the run folder's network, through the registry, is the port with its trained layers
    model = load_run_model(tmp_path / "train_N8")
    assert model.name == "dlib_resnet" and len(model.layers) == 109
    # the face chips were made once, beside the image cache, and are what alignment gives
    from mfr.backbones.base import aligned_cache
    from mfr.data.image_cache import ImageCache

    cache = ImageCache.open(tmp_path / "baseline" / "cache")
    assert (cache.cache_dir / "aligned_dlib_resnet_crop.npy").is_file()
    kept = aligned_cache(get_backbone("dlib_resnet"), cache)
    assert isinstance(kept, np.memmap)  # read back, not made again
    np.testing.assert_array_equal(kept, get_backbone("dlib_resnet").align(cache.images))


@pytest.mark.slow
def test_port_and_dlib_give_the_same_metrics_on_the_same_chips(tmp_path):
    """`mfr evaluate --embedder dlib_resnet` and `--embedder dlib_reference` with the same face box."""
    import json

    from mfr.study.steps import evaluate_dataset_step

    root = _tiny_rmfrd(tmp_path, subjects=8)
    cfg = StudyConfig(bootstrap_resamples=0, max_per_subject=3)
    got = {}
    for emb in ("dlib_reference", "dlib_resnet"):
        evaluate_dataset_step(cfg, root, "rmfrd", tmp_path / emb, embedder=emb, progress=False,
                              face_box="crop")
        got[emb] = json.loads((tmp_path / emb / "metrics.json").read_text())["masked_vs_unmasked"]
    for key in ("auc", "eer"):
        assert abs(got["dlib_reference"][key] - got["dlib_resnet"][key]) <= 1e-3, (key, got)
