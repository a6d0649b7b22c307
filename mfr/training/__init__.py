"""Training: the Siamese model, its losses, the Keras and JAX engines, checkpoints."""
