"""Verification of any two photos: face found, cropped, embedded, compared, decided."""
