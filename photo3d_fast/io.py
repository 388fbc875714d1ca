"""Reading photos and depth maps, with one clear error for each way they can be wrong.

Photos come out as (H, W, 3) uint8 sRGB with the EXIF orientation applied; grayscale,
palette, RGBA (alpha dropped), CMYK and 16-bit inputs are converted. Depth maps come
out as (H, W) float32 at the photo's size, with NaN/inf (and zeros, for z-depth) filled
from their valid neighbours.

Outputs: ``write_atomic`` writes a file under a hidden temporary name,
``.NAME.partial-PID[.ext]``, and renames it when complete; ``remove_stale_partials``
removes such files left by a process that was killed; ``check_output`` refuses an output
that is a directory or one of the inputs before any work is done.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import Photo3DError, warn
from .ops.fill import push_pull_fill

#: Smallest and largest photo we accept. The smallest is where a parallax clip stops
#: making sense; the largest keeps the LDI of a full-resolution photo within a GPU's memory.
MIN_SIDE = 16
MAX_SIDE = 16384
MAX_PIXELS = 150_000_000

#: The 35 mm frame's diagonal, the reference of "35 mm-equivalent" focal lengths.
_FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)


@dataclass(frozen=True)
class Photo:
    """rgb: (H, W, 3) uint8 sRGB; exif_fov: field of view across the longer side in
    degrees from the EXIF 35 mm-equivalent focal length, or None."""

    rgb: np.ndarray
    exif_fov: float | None = None


def _check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise Photo3DError(f"{what} {str(path)!r} does not exist")
    if path.is_dir():
        raise Photo3DError(f"{what} {str(path)!r} is a directory, not a file")
    if path.stat().st_size == 0:
        raise Photo3DError(f"{what} {str(path)!r} is empty (0 bytes)")


def _check_size(path: Path, what: str, w: int, h: int, min_side: int) -> None:
    if min(w, h) < min_side:
        raise Photo3DError(f"{what} {str(path)!r} is {w}x{h}; photos must be at least {min_side}x{min_side} pixels")
    if max(w, h) > MAX_SIDE or w * h > MAX_PIXELS:
        raise Photo3DError(
            f"{what} {str(path)!r} is {w}x{h}; the limit is {MAX_SIDE} pixels a side and "
            f"{MAX_PIXELS // 10**6} MP; downscale it first"
        )


def _open(path: Path, what: str, min_side: int = MIN_SIDE) -> Image.Image:
    """The image of ``path``, decoded only once the size its header declares is within the
    limits: a 1 MB PNG may declare 300 MP, 1.2 GB once decoded."""
    _check_file(path, what)
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with warnings.catch_warnings():
            # Pillow warns past MAX_IMAGE_PIXELS; we refuse such an image ourselves, below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)  # reads the header only
        try:
            _check_size(path, what, *im.size, min_side)
        except Photo3DError:
            im.close()
            raise
        im.load()
    except PermissionError:
        raise Photo3DError(f"cannot read {what} {str(path)!r}: permission denied") from None
    except UnidentifiedImageError:
        raise Photo3DError(
            f"{what} {str(path)!r} is not an image Pillow can read (JPEG, PNG, WebP, TIFF, BMP...)"
        ) from None
    except Image.DecompressionBombError:
        raise Photo3DError(f"{what} {str(path)!r} is larger than the {MAX_PIXELS // 10**6} MP limit") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise Photo3DError(f"{what} {str(path)!r} is truncated or corrupt: {e}") from None
    return im


def _exif_fov(im: Image.Image, width: int, height: int) -> float | None:
    try:
        f35 = im.getexif().get_ifd(0x8769).get(0xA405)  # Exif IFD: FocalLengthIn35mmFilm
    except Exception:  # malformed EXIF is common and never a reason to fail
        return None
    if not f35 or float(f35) <= 0:
        return None
    # 35 mm-equivalent focal lengths are defined by the diagonal; take the longer side's share.
    long_mm = _FULL_FRAME_DIAGONAL_MM * max(width, height) / math.hypot(width, height)
    return math.degrees(2.0 * math.atan(long_mm / (2.0 * float(f35))))


def _to_uint8_rgb(im: Image.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else (1.0 if a.max() <= 1.0 else 255.0)
        a = np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(a[:, :, None], 3, axis=2)
    if im.mode != "RGB":
        im = im.convert("RGB")  # L, LA, P, RGBA, CMYK, YCbCr...; alpha is dropped
    return np.asarray(im, dtype=np.uint8).copy()


def load_image(path: str | Path) -> Photo:
    """Read a photo file. Raises Photo3DError for anything that is not a usable photo."""
    path = Path(path)
    im = _open(path, "image")
    w, h = im.size
    exif_fov = _exif_fov(im, w, h)
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:
        pass  # a broken orientation tag: keep the pixels as stored
    return Photo(_to_uint8_rgb(im), exif_fov)


def resize_map(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an (h, w) float map to shape (H, W) (area-averaged when shrinking)."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(values, np.float32))[None, None]
    shrink = shape[0] < values.shape[0] and shape[1] < values.shape[1]
    out = F.interpolate(t, size=shape, mode="area" if shrink else "bilinear", align_corners=None if shrink else False)
    return out[0, 0].numpy()


def _read_depth_array(path: Path) -> np.ndarray:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        _check_file(path, "depth map")
        try:
            a = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise Photo3DError(f"depth map {str(path)!r} is not a readable .npy array: {e}") from None
        if not np.issubdtype(a.dtype, np.number):
            raise Photo3DError(f"depth map {str(path)!r} holds {a.dtype}, not numbers")
        return a.astype(np.float32)
    if suffix == ".exr":
        raise Photo3DError(
            f"depth map {str(path)!r}: .exr is not supported; save it as a 16-bit PNG or a .npy array"
        )
    im = _open(path, "depth map", min_side=1)  # a coarse depth map is resized to the photo
    if im.mode in ("RGB", "RGBA", "P", "LA", "CMYK", "YCbCr"):
        warn(f"depth map {str(path)!r} is in color ({im.mode}); using its luminance")
        im = im.convert("L")
    return np.asarray(im, dtype=np.float32)


def load_depth_map(path: str | Path, shape: tuple[int, int], kind: str = "disparity") -> np.ndarray:
    """Read a user depth map and bring it to the photo's (H, W).

    kind: "disparity" (larger = nearer, any affine scale: what depth models and most
    tools write) or "depth" (z-depth, larger = farther, must be positive).
    Accepts 8/16-bit grayscale images (PNG, TIFF) and .npy arrays of shape (h, w) or
    (h, w, 1). Returns (H, W) float32 in the file's own units, invalid pixels repaired.
    """
    if kind not in ("disparity", "depth"):
        raise Photo3DError(f"depth kind {kind!r} must be 'disparity' or 'depth'")
    path = Path(path)
    a = _read_depth_array(path)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim != 2 or min(a.shape) < 1:
        raise Photo3DError(f"depth map {str(path)!r} has shape {a.shape}; expected a 2D (H, W) map")
    valid = np.isfinite(a)
    if kind == "depth":
        valid &= a > 0
    if not valid.any():
        raise Photo3DError(
            f"depth map {str(path)!r} has no valid value (all NaN/inf{' or <= 0' if kind == 'depth' else ''})"
        )
    if not valid.all():
        bad = int((~valid).sum())
        warn(f"depth map {str(path)!r}: {bad} invalid pixels (NaN/inf{'/<=0' if kind == 'depth' else ''}) filled from neighbours")

        a = push_pull_fill(np.where(valid, a, 0.0).astype(np.float32), valid)
    if a.shape != tuple(shape):
        warn(
            f"depth map is {a.shape[1]}x{a.shape[0]} but the image is {shape[1]}x{shape[0]}; "
            "it was resized to match"
        )
        a = resize_map(a, shape)
    return a.astype(np.float32)


# -- outputs ------------------------------------------------------------------------------

#: A temporary file: ``.NAME.partial-PID`` or ``.NAME.partial-PID.EXT`` (the extension kept
#: last where the writer needs it: ffmpeg's muxer, numpy's .npy), renamed to NAME when complete.
_PARTIAL = re.compile(r"\.(?P<name>.+)\.partial-(?P<pid>[0-9]+)(?:\.[^.]*)?")


def partial_name(path: Path, suffix: str = "") -> Path:
    """The temporary name ``path`` is written under by this process."""
    return path.with_name(f".{path.name}.partial-{os.getpid()}{suffix}")


def parse_partial(name: str) -> tuple[str, int] | None:
    """(the final file's name, the writer's pid) of a temporary file's name, or None."""
    m = _PARTIAL.fullmatch(name)
    return (m["name"], int(m["pid"])) if m else None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (a zombie counts as running)."""
    if pid <= 0:
        return False
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C_EVENT there: assume it runs
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(directory: Path, owns: Callable[[str], bool] = lambda name: True,
                          pids: Iterable[int] | None = None, recursive: bool = False) -> int:
    """Remove the temporary files in ``directory`` (and below, if ``recursive``) whose final
    name ``owns`` accepts and whose writer is dead: a killed process (SIGKILL, a crash, a
    power cut) never removed them. pids: only those of these processes (still only once
    dead); None: of any dead process. A live process's are never touched. The pid is
    checked on this machine: on a folder shared between machines another one's writer is
    only known dead if its pid is free here too. Returns how many were removed."""
    only = None if pids is None else set(pids)
    n = 0
    if not directory.is_dir():
        return 0
    for p in (directory.rglob if recursive else directory.glob)(".*.partial-*"):
        parsed = parse_partial(p.name)
        if parsed is None or not owns(parsed[0]) or (only is not None and parsed[1] not in only):
            continue
        if parsed[1] != os.getpid() and not pid_alive(parsed[1]) and p.is_file():
            p.unlink(missing_ok=True)
            n += 1
    return n


def remove_own_partials(directory: Path, pid: int | None = None) -> int:
    """Remove the temporary files in ``directory`` written by this process (or ``pid``):
    for a stop that lands between a writer creating its temporary file and registering it
    for removal. Returns how many were removed."""
    pid = os.getpid() if pid is None else pid
    n = 0
    if not Path(directory).is_dir():
        return 0
    for p in Path(directory).glob(".*.partial-*"):
        parsed = parse_partial(p.name)
        if parsed is not None and parsed[1] == pid and p.is_file():
            p.unlink(missing_ok=True)
            n += 1
    return n


def check_output(path: Path, inputs: Iterable[str | Path | None] = (), what: str = "output") -> None:
    """Photo3DError, before any work, for an output that cannot be written: a directory, or
    one of ``inputs`` (under any name: a hard or symbolic link), which would be replaced."""
    path = Path(path)
    if path.is_dir():
        raise Photo3DError(f"{what} {str(path)!r} is a directory; give a file name inside it")
    for source in inputs:
        if source is not None and path.exists() and Path(source).exists() and os.path.samefile(path, source):
            raise Photo3DError(f"{what} {str(path)!r} is the input {str(source)!r}; writing it would "
                               f"destroy the input, so choose another output name")


def write_atomic(path: Path, write: Callable[[Path], None], suffix: str = "") -> Path:
    """Write ``path`` through ``write(temporary path)`` and rename it into place when
    complete, so that ``path`` is either whole or absent; the temporary file is removed on
    any failure. A failed write (a full disk, a lost permission) is a Photo3DError."""
    tmp = partial_name(path, suffix)
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        raise Photo3DError(f"cannot write {str(path)!r}: {e.strerror or e}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


#: Still image outputs by extension (Pillow's format names): stereo stills, refocus, cutouts.
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}


def check_image_output(path: str | Path, inputs: Iterable[str | Path | None] = (), what: str = "output",
                       suffixes: Iterable[str] = tuple(IMAGE_FORMATS)) -> Path:
    """``path`` checked before any work, as an image output: one of ``suffixes``, not one
    of ``inputs`` (``check_output``), its folder there and writable; stale temporary files of
    it left by killed processes are removed. Photo3DError in one line otherwise."""
    path = Path(path)
    suffixes = tuple(suffixes)
    if path.suffix.lower() not in suffixes:
        names = ", ".join(suffixes[:-1]) + f" or {suffixes[-1]}" if len(suffixes) > 1 else suffixes[0]
        raise Photo3DError(f"{what} {str(path)!r} must end in {names}")
    check_output(path, inputs, what)
    parent = path.parent.resolve()
    if not parent.is_dir():
        raise Photo3DError(f"cannot write {str(path)!r}: directory {str(path.parent)!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise Photo3DError(f"cannot write {str(path)!r}: directory {str(path.parent)!r} is not writable")
    remove_stale_partials(path.parent, lambda name: name == path.name)
    return path


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write (H, W), (H, W, 3) or (H, W, 4) uint8 ``image`` to ``path`` in the format of its
    extension (``IMAGE_FORMATS``; JPEG and WebP at quality 95), atomically (``write_atomic``)."""
    path = Path(path)
    fmt = IMAGE_FORMATS[path.suffix.lower()]
    extra = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    pil = Image.fromarray(image)
    return write_atomic(path, lambda tmp: pil.save(tmp, format=fmt, **extra), path.suffix)
