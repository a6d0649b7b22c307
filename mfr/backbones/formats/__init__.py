"""Readers of the weight-file formats the backbones are released in."""
