"""--precision float32 | bf16 | tf32 (mfr.core.precision): the setting, its pinning and
restoring, what run.json records, and bf16's embeddings against float32's."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from mfr.core.config import ConfigValueError, StudyConfig
from mfr.core.errors import InputError
from mfr.core.precision import (
    PRECISIONS,
    apply_precision,
    precision_in_effect,
    precision_scope,
    with_precision,
)

#: bf16 keeps 8 bits of mantissa (relative step 2^-8 = 0.0039); a unit embedding of a tiny
#: network computed in it is within this of float32's, elementwise (measured: ~0.01)
BF16_ATOL = 0.05


def _policy() -> str:
    return keras.mixed_precision.global_policy().name


# --------------------------------------------------------------------------- the setting


def test_precision_field_takes_its_choices_and_refuses_others_in_one_line():
    assert StudyConfig().precision == "float32"
    for p in PRECISIONS:
        assert StudyConfig(precision=p).precision == p
    with pytest.raises(ConfigValueError) as e:
        StudyConfig(precision="fp16")
    assert e.value.key == "precision" and "\n" not in str(e.value)
    assert "float32" in str(e.value) and "bf16" in str(e.value)


def test_cli_refuses_a_bad_precision_with_exit_2(capsys):
    from mfr.cli import main

    with pytest.raises(SystemExit) as e:
        main(["embed", "--pairs", "x", "--out", "y", "--precision", "fp16"])
    assert e.value.code == 2
    assert "--precision" in capsys.readouterr().err


def test_fingerprint_and_recorded_fields_hold_precision():
    from mfr.study.steps.settings import embed_settings, train_settings

    a, b = StudyConfig(), StudyConfig(precision="bf16")
    assert embed_settings(a) != embed_settings(b)
    assert embed_settings(b)["precision"] == "bf16"
    assert train_settings(a) != train_settings(b)
    for command in ("embed", "train", "evaluate", "gradcam"):
        assert b.used_by(command)["precision"] == "bf16", command
    assert "precision" not in b.used_by("partition")


def test_unknown_precision_and_tf32_on_cpu_are_one_line_input_errors():
    with pytest.raises(InputError, match="precision must be one of"):
        apply_precision("fp16")
    # tf32: refused on a CPU (recording a setting that did nothing would mislead)
    before = _policy()
    with pytest.raises(InputError) as e, precision_scope("tf32"):
        pass  # pragma: no cover - never entered
    assert "TF32" in str(e.value) and "cpu" in str(e.value) and "\n" not in str(e.value)
    assert _policy() == before


# --------------------------------------------------------------------------- scopes


def test_scope_sets_and_restores_policy_and_records_what_is_in_effect():
    from mfr.core.numerics import numerics
    from mfr.core.outputs import run_metadata

    assert _policy() == "float32"
    assert precision_in_effect()["setting"] is None
    with precision_scope("bf16") as rec:
        assert _policy() == "mixed_bfloat16"
        assert rec["setting"] == "bf16" and rec["device"]["platform"] == "cpu"
        assert numerics()["precision"]["setting"] == "bf16"
        assert run_metadata()["numerics"]["precision"]["keras_policy"] == "mixed_bfloat16"
        with precision_scope("float32"):  # nested: the inner one wins, then the outer again
            assert _policy() == "float32"
            assert precision_in_effect()["setting"] == "float32"
        assert _policy() == "mixed_bfloat16"
        assert precision_in_effect()["setting"] == "bf16"
    assert _policy() == "float32"
    assert precision_in_effect()["setting"] is None


def test_step_decorator_restores_the_policy_after_an_error():
    seen = []

    @with_precision
    def step(config, fail=False):
        seen.append(_policy())
        if fail:
            raise RuntimeError("boom")
        return "done"

    assert step(StudyConfig(precision="bf16")) == "done"
    with pytest.raises(RuntimeError):
        step(config=StudyConfig(precision="bf16"), fail=True)
    assert step(StudyConfig()) == "done"
    assert seen == ["mixed_bfloat16", "mixed_bfloat16", "float32"]
    assert _policy() == "float32"


@pytest.mark.skipif(keras.config.backend() != "tensorflow", reason="TensorFlow's TF32 switch")
def test_float32_pins_tensorflow_tf32_off_and_puts_it_back():
    import tensorflow as tf

    assert tf.config.experimental.tensor_float_32_execution_enabled()  # TensorFlow's default
    with precision_scope("float32") as rec:
        assert not tf.config.experimental.tensor_float_32_execution_enabled()
        assert rec["tensorflow_tf32_execution"] is False
    assert tf.config.experimental.tensor_float_32_execution_enabled()


@pytest.mark.backend
def test_jax_matmul_precision_pinned_under_jax_and_put_back():
    if keras.config.backend() != "jax":
        pytest.skip("JAX's matmul precision: KERAS_BACKEND=jax")
    import jax

    before = jax.config.jax_default_matmul_precision
    with precision_scope("float32") as rec:
        assert jax.config.jax_default_matmul_precision == "highest"
        assert rec["jax_default_matmul_precision"] == "highest"
    assert jax.config.jax_default_matmul_precision == before


# --------------------------------------------------------------------------- bf16 numbers


def _tiny_embeddings(precision: str, weights=None):
    from tiny_models import tiny_senet

    from mfr.evaluation.embeddings import embed_images

    with precision_scope(precision):
        keras.utils.set_random_seed(7)
        model = tiny_senet((32, 32, 3), width=8)
        if weights is not None:
            model.set_weights(weights)
        images = np.random.default_rng(3).integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
        vectors = embed_images(model, images, batch_size=5, progress=False)
        compute = {la.compute_dtype for la in model.layers if la.weights}
    return vectors, model.get_weights(), compute


@pytest.mark.backend
def test_bf16_embeddings_are_float32_unit_and_close_to_float32():
    f32, weights, c32 = _tiny_embeddings("float32")
    b16, weights_b, c16 = _tiny_embeddings("bf16", weights)
    assert c32 == {"float32"} and c16 == {"bfloat16"}  # the layers did compute in bf16
    assert all(w.dtype == np.float32 for w in weights_b)  # variables stay float32
    assert b16.dtype == np.float32 and f32.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(b16, axis=1), 1.0, atol=1e-6)
    assert not np.array_equal(b16, f32)  # bf16 did change the numbers ...
    np.testing.assert_allclose(b16, f32, atol=BF16_ATOL)  # ... within bf16's tolerance
    assert _policy() == "float32"


@pytest.mark.backend
def test_bf16_siamese_distance_and_loss_are_float32():
    from tiny_models import tiny_senet

    from mfr.training.losses import contrastive_loss
    from mfr.training.siamese import build_siamese

    feats = np.random.default_rng(0).normal(size=(6, 32, 32, 3)).astype("float32")
    with precision_scope("bf16"):
        net = tiny_senet((32, 32, 3), width=8)
        model = build_siamese(net, [feats])
        d = model.predict([np.arange(3), np.arange(3, 6)], verbose=0)
        loss = contrastive_loss(5.0)(keras.ops.convert_to_tensor([1.0, 0.0, 1.0]),
                                     keras.ops.convert_to_tensor(d))
    assert model.get_layer("distance").compute_dtype == "float32"
    assert d.dtype == np.float32 and d.shape == (3,)
    assert keras.backend.standardize_dtype(loss.dtype) == "float32"
    assert _policy() == "float32"


# --------------------------------------------------------------------------- a step


def test_embed_step_under_bf16_records_it_and_leaves_float32_behind(tmp_path):
    from mfr.cli import main
    from mfr.data.datasets.synthetic import make_demo_tree
    from mfr.evaluation.embeddings import load_embeddings

    tree = make_demo_tree(tmp_path / "tree", n_subjects=4, image_size=64)
    assert main(["partition", "--data-root", str(tree), "--out", str(tmp_path / "p")]) == 0
    common = ["embed", "--pairs", str(tmp_path / "p"), "--backbone", "dlib_resnet",
              "--image-size", "64", "--no-progress"]
    assert main([*common, "--out", str(tmp_path / "b16"), "--precision", "bf16"]) == 0
    assert _policy() == "float32"
    run = json.loads((tmp_path / "b16" / "run.json").read_text())
    assert run["config"]["precision"] == "bf16"
    assert run["fingerprint"]["settings"]["precision"] == "bf16"
    rec = run["numerics"]["precision"]
    assert rec["setting"] == "bf16" and rec["keras_policy"] == "mixed_bfloat16"
    assert rec["device"]["platform"] == "cpu"
    emb = load_embeddings(tmp_path / "b16" / "embeddings").vectors
    assert emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)
    # the same run in float32: another fingerprint, float32 recorded
    assert main([*common, "--out", str(tmp_path / "f32")]) == 0
    run32 = json.loads((tmp_path / "f32" / "run.json").read_text())
    assert run32["numerics"]["precision"]["setting"] == "float32"
    assert run32["fingerprint"] != run["fingerprint"]
