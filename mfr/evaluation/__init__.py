"""Evaluation: embeddings, distances, verification and identification metrics, thresholds."""
