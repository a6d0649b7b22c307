"""Data: datasets and their fetching, the partition into pairs, images and the image cache, face boxes."""
