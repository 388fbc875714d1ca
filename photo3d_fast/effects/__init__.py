"""Effects on a photo and its depth: depth of field, cutouts and compositing."""
