"""Frames -> files: output planning (``formats``), the frame sink with its writer thread
(``sink``), ffmpeg and PNG writers (``writers``), NVENC through PyNvVideoCodec (``nvenc``)."""

from .writers import PngFrameWriter, VideoWriter, open_video

__all__ = ["PngFrameWriter", "VideoWriter", "open_video"]
