"""Small models for the tests: fast stand-ins with SENet50's layer-type pattern."""

from __future__ import annotations

import keras


def tiny_senet(input_shape=(32, 32, 3), width: int = 16, blocks: int = 2, name: str = "tiny_senet"):
    """A small model with SENet50's layer-type pattern (conv-BN-ReLU, SE blocks with a
    projection or identity shortcut, Add, ReLU, average pooling, GAP), for tests and CPU
    benchmarks of the training mechanics. Not the study's model."""
    from keras import layers as kl

    def conv_bn(x, f, k, nm, strides=1):
        x = kl.Conv2D(f, k, strides=strides, padding="same", use_bias=False, name=nm)(x)
        return kl.BatchNormalization(epsilon=1e-4, name=f"{nm}_bn")(x)

    inp = keras.Input(shape=tuple(input_shape), name="image")
    x = kl.Activation("relu", name="stem_relu")(conv_bn(inp, width, 3, "stem"))
    for b in range(1, blocks + 1):
        p = f"b{b}"
        f = width * 2 ** (b - 1) * 2
        y = kl.Activation("relu", name=f"{p}_reduce_relu")(conv_bn(x, f // 2, 1, f"{p}_reduce"))
        y = kl.Activation("relu", name=f"{p}_3x3_relu")(conv_bn(y, f // 2, 3, f"{p}_3x3"))
        y = conv_bn(y, f, 1, f"{p}_increase")
        se = kl.GlobalAveragePooling2D(name=f"{p}_se_gap")(y)
        se = kl.Reshape((1, 1, f), name=f"{p}_se_reshape")(se)
        se = kl.Conv2D(max(f // 4, 1), 1, name=f"{p}_down")(se)
        se = kl.Activation("relu", name=f"{p}_down_relu")(se)
        se = kl.Conv2D(f, 1, name=f"{p}_up")(se)
        se = kl.Activation("sigmoid", name=f"{p}_up_sigmoid")(se)
        y = kl.Multiply(name=f"{p}_se_multiply")([y, se])
        short = conv_bn(x, f, 1, f"{p}_proj") if x.shape[-1] != f else x
        x = kl.Activation("relu", name=f"{p}_relu")(kl.Add(name=f"{p}_add")([y, short]))
    x = kl.AveragePooling2D(2, name="avg_pool")(x)
    x = kl.GlobalAveragePooling2D(name="global_avg_pool")(x)
    return keras.Model(inp, x, name=name)
