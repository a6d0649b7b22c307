"""Face-recognition backbones other than SENet50, built in Keras 3 from their released weights."""
