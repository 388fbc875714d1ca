"""Spherical-video metadata (Google's Spherical Video V2: ``st3d`` and ``sv3d`` boxes) for
--vr180 clips in .mp4/.mov, which headset players and YouTube read to show the frame as a
stereo half sphere.

ffmpeg's mov muxer writes these boxes only from side data of an input stream, which raw
frames piped into it cannot carry, and no maintained Python library writes them (Google's
spatial-media injector is not packaged), so the two boxes are inserted here into the video
track's sample entry of the finished file. Only sizes change: the parents' sizes grow by
the inserted bytes, and the chunk offsets (``stco``/``co64``) of media stored after the
``moov`` box (faststart) move by the same amount.

Box layouts (RFC "Spherical Video V2", github.com/google/spatial-media/docs/spherical-video-v2-rfc.md):
``st3d``: full box, stereo_mode u8 (1 top-bottom, 2 left-right); ``sv3d``: ``svhd`` (full
box, metadata source, a C string), ``proj`` (``prhd``: full box, yaw, pitch, roll as 16.16
degrees; ``equi``: full box, projection bounds top, bottom, left, right as 0.32 fractions
of the frame cropped away). A 180-degree equirectangular eye crops a quarter of the full
sphere's width on each side: left = right = 0x40000000.
"""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

from ..errors import Photo3DError
from ..io import partial_name

#: stereo_mode of ``st3d`` per layout.
STEREO_MODES = {"tb": 1, "sbs": 2}
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}
_VIDEO_ENTRIES = {b"avc1", b"avc3", b"hvc1", b"hev1", b"av01", b"vp09"}
#: Bytes of a VisualSampleEntry before its child boxes (after the 8-byte box header).
_VISUAL_ENTRY_FIELDS = 78
_SOURCE = b"photo3d_fast\0"


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _full_box(kind: bytes, payload: bytes) -> bytes:
    return _box(kind, b"\0\0\0\0" + payload)  # version 0, flags 0


def vr180_boxes(layout: str) -> bytes:
    """The ``st3d`` + ``sv3d`` boxes of a VR180 clip whose eyes are packed as ``layout``
    ("sbs" or "tb"), each eye 180 x 180 degrees equirectangular."""
    st3d = _full_box(b"st3d", bytes([STEREO_MODES[layout]]))
    prhd = _full_box(b"prhd", struct.pack(">iii", 0, 0, 0))
    equi = _full_box(b"equi", struct.pack(">IIII", 0, 0, 0x40000000, 0x40000000))
    sv3d = _box(b"sv3d", _full_box(b"svhd", _SOURCE) + _box(b"proj", prhd + equi))
    return st3d + sv3d


def _children(data: bytes, start: int, end: int):
    """(offset, size, kind, header) of the boxes in data[start:end]."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[pos + 8:pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise Photo3DError(f"malformed MP4 box {kind!r} at byte {pos}")
        yield pos, size, kind, header
        pos += size


def _rebuild(data: bytes, start: int, end: int, insert: bytes, shift: int, found: list) -> bytes:
    """data[start:end] (a run of boxes) with ``insert`` appended to every video sample entry,
    the sizes of the boxes holding one grown to match, and chunk offsets moved by ``shift``."""
    out = []
    for pos, size, kind, header in _children(data, start, end):
        body_start = pos + header
        if kind in _CONTAINERS:
            body = _rebuild(data, body_start, pos + size, insert, shift, found)
        elif kind == b"stsd":  # full box + entry count, then the sample entries
            body = data[body_start:body_start + 8] + _rebuild(data, body_start + 8, pos + size, insert, shift, found)
        elif kind in _VIDEO_ENTRIES:
            body = data[body_start:pos + size] + insert
            found.append(kind)
        elif kind == b"stco" and shift:
            n = struct.unpack(">I", data[body_start + 4:body_start + 8])[0]
            offsets = struct.unpack(f">{n}I", data[body_start + 8:body_start + 8 + 4 * n])
            body = data[body_start:body_start + 8] + struct.pack(f">{n}I", *(o + shift for o in offsets))
        elif kind == b"co64" and shift:
            n = struct.unpack(">I", data[body_start + 4:body_start + 8])[0]
            offsets = struct.unpack(f">{n}Q", data[body_start + 8:body_start + 8 + 8 * n])
            body = data[body_start:body_start + 8] + struct.pack(f">{n}Q", *(o + shift for o in offsets))
        else:
            out.append(data[pos:pos + size])
            continue
        if header == 16:
            out.append(struct.pack(">I4sQ", 1, kind, 16 + len(body)) + body)
        else:
            out.append(struct.pack(">I4s", 8 + len(body), kind) + body)
    return b"".join(out)


def inject_vr180(path: str | os.PathLike, layout: str) -> None:
    """Insert VR180 metadata (``vr180_boxes``) into the video track of the .mp4/.mov ``path``,
    in place: the result is written beside it and renamed over it. Photo3DError when the
    file has no ``moov`` box or no video sample entry to hold them."""
    path = Path(path)
    insert = vr180_boxes(layout)
    with open(path, "rb") as f:
        top = []
        total = path.stat().st_size
        pos = 0
        while pos + 8 <= total:
            f.seek(pos)
            size, kind = struct.unpack(">I4s", f.read(8))
            if size == 1:
                size = struct.unpack(">Q", f.read(8))[0]
            elif size == 0:
                size = total - pos
            top.append((pos, size, kind))
            pos += size
        moov = next(((p, n) for p, n, k in top if k == b"moov"), None)
        if moov is None:
            raise Photo3DError(f"{path.name}: no moov box; cannot add VR180 metadata")
        m_pos, m_size = moov
        f.seek(m_pos)
        moov_bytes = f.read(m_size)
        # Chunk offsets point into mdat; those after moov move by what moov grows.
        media_after = any(k == b"mdat" and p > m_pos for p, n, k in top)
        found: list = []
        shift = 0
        if media_after:
            # The growth is known before rebuilding: one insert per video sample entry.
            probe: list = []
            _rebuild(moov_bytes, 0, len(moov_bytes), insert, 0, probe)
            shift = len(insert) * len(probe)
        new_moov = _rebuild(moov_bytes, 0, len(moov_bytes), insert, shift, found)
        if not found:
            raise Photo3DError(f"{path.name}: no video track; cannot add VR180 metadata")
        tmp = partial_name(path, path.suffix)
        try:
            with open(tmp, "wb") as out:
                f.seek(0)
                _copy(f, out, m_pos)
                out.write(new_moov)
                f.seek(m_pos + m_size)
                shutil.copyfileobj(f, out, 1 << 20)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def _copy(src, dst, n: int) -> None:
    while n > 0:
        chunk = src.read(min(n, 1 << 20))
        if not chunk:
            break
        dst.write(chunk)
        n -= len(chunk)
