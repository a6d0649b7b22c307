"""Explanation: Grad-CAM of the Siamese distance and what its maps attend to."""
