"""mfr: a reproducible study of masked face recognition with a Siamese SENet50."""

__version__ = "0.1.0"
