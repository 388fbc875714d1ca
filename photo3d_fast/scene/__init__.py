"""From a photo and its depth to a 3D scene: the camera (``camera``), the layered depth image
(``ldi``), and the camera paths that move through it (``paths``)."""
