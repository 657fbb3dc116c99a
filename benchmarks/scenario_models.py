"""Models the real-run diagnosis benchmark plugs in (`model: scenario_models:<function>`)."""

from __future__ import annotations

import keras


def plain_cnn(input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    """The small CNN's five strided conv blocks without BatchNormalization: nothing steadies
    its activations, so a too-high learning rate makes its steps erratic."""
    inputs = keras.Input(input_shape)
    x = inputs
    for i, filters in enumerate((16, 32, 64, 96, 128)):
        x = keras.layers.Conv2D(filters, 5 if i == 0 else 3, strides=2, padding="same")(x)
        x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="plain_cnn")
