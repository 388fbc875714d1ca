"""Inpainting of what the photo's foreground hides: the LDI's back layers, in colour.

``classic.py`` needs no weights; ``learned.py`` runs LaMa and MI-GAN through ``engines/``.
"""
