"""Bad datasets in every format ingest reads: each is refused with one line naming the file,
the row and the column, before any stage runs, or it runs correctly.

Formats: .npy .npz .csv .tsv .parquet .zarr .nc and a folder of part files. Faults: empty,
truncated, corrupt, wrong dtype (object, text, complex), NaN and inf, values that overflow
float32, text in a numeric column at any row (also after the rows a table's types are
guessed from), ragged rows, zero or one row, labels of the wrong length, unsigned integers
beyond int64. Then what only a run reveals: k >= n, two rows, a constant column, duplicates
only, values whose distances overflow float32, and ``embed`` of rows of the wrong width or
rows the model maps to NaN.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest

from paradime_core import DataError
from pipelines.errors import PipelineError
from pipelines.ingest import ingest, open_source
from pipelines.store import ArtifactStore

from ._cli import assert_one_line_error, run_cli

N, D = 300, 4
SPEC = """
name: faults-mini
relations:
  - {name: p, level: global, type: neighbor, options: {n_neighbors: 5, method: faiss_exact},
     transforms: [{type: connect}, {type: symmetrize}]}
  - {name: q, level: batch, type: pdist, transforms: [{type: cauchy}]}
losses:
  - {name: emb, type: relation, func: cross_entropy, keys: {rels: [p, q]}}
model: {type: fully_connected, options: {hidden_dims: [8]}}
training_phases:
  - {name: main, epochs: 2, sampling: {type: item, batch_size: 50}, loss: {components: [emb]}}
"""


def rows(n: int = N, d: int = D, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


def with_cell(value: float, row: int = 5, column: int = 2) -> np.ndarray:
    X = rows()
    X[row, column] = value
    return X


def write_csv(path: Path, lines: list[str], sep: str = ",") -> None:
    path.write_text("\n".join(line.replace(",", sep) for line in lines) + "\n")


def table(n: int = 1000, bad_row: int | None = None, bad_line: str = "", label: bool = False) -> list[str]:
    """A numeric CSV (columns a, b, c and label y if asked), one data row replaced by ``bad_line``."""
    lines = ["a,b,c,y" if label else "a,b,c"]
    for i in range(n):
        line = f"{i},{i * 2},{i % 3}" + (f",{i % 3}" if label else "")
        lines.append(bad_line if i == bad_row else line)
    return lines


def truncated(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


# --------------------------------------------------------------------------- builders
def npy(value: np.ndarray, **kwargs) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        np.save(folder / "data.npy", value, **kwargs)
        return folder / "data.npy"
    return make


def npz(**arrays: np.ndarray) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        np.savez(folder / "data.npz", **arrays)
        return folder / "data.npz"
    return make


def raw(name: str, content: bytes) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        (folder / name).write_bytes(content)
        return folder / name
    return make


def csv(lines: list[str], name: str = "data.csv") -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        write_csv(folder / name, lines, sep="\t" if name.endswith(".tsv") else ",")
        return folder / name
    return make


def parquet(frame_of: Callable[[], object]) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        frame_of().to_parquet(folder / "data.parquet")
        return folder / "data.parquet"
    return make


def frame(X: np.ndarray):
    import pandas as pd

    return pd.DataFrame(X, columns=[chr(ord("a") + i) for i in range(X.shape[1])])


def text_column():
    values = frame(rows())
    values["a"] = values["a"].astype(str)
    return values


def zarr_array(X: np.ndarray, damage: Callable[[Path], None] | None = None) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        import zarr

        path = folder / "data.zarr"
        array = zarr.open_array(str(path), mode="w", shape=X.shape, chunks=(100, X.shape[1]), dtype=X.dtype)
        array[:] = X
        if damage is not None:
            damage(path)
        return path
    return make


def zarr_group(**arrays: np.ndarray) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        import zarr

        group = zarr.open_group(str(folder / "data.zarr"), mode="w")
        for name, value in arrays.items():
            group.create_array(name, shape=value.shape, dtype=value.dtype)[...] = value
        return folder / "data.zarr"
    return make


def damaged_chunk(path: Path) -> None:
    chunk = sorted(p for p in (path / "c").rglob("*") if p.is_file())[1]
    chunk.write_bytes(b"not a chunk" * 10)


def netcdf(X: np.ndarray) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        import xarray as xr

        xr.Dataset({"main": (("sample", "feature"), X)}).to_netcdf(folder / "data.nc")
        return folder / "data.nc"
    return make


def then(make: Callable[[Path], Path], damage: Callable[[Path], Path]) -> Callable[[Path], Path]:
    return lambda folder: damage(make(folder))


def parts(*arrays: np.ndarray, damage_last: bool = False) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        (folder / "parts").mkdir()
        for i, value in enumerate(arrays):
            np.save(folder / "parts" / f"part{i}.npy", value)
        if damage_last:
            truncated(folder / "parts" / f"part{len(arrays) - 1}.npy")
        return folder / "parts"
    return make


def empty_folder(folder: Path) -> Path:
    (folder / "parts").mkdir()
    (folder / "parts" / "notes.md").write_text("no data here")
    return folder / "parts"


# (id, builder, fragments of the error; "{path}" is the data path, "{part}" the last part)
INGEST_CASES: list[tuple[str, Callable[[Path], Path], tuple[str, ...]]] = [
    # .npy
    ("npy empty file", raw("data.npy", b""), ("{path}: the file is empty (0 bytes)",)),
    ("npy truncated", then(npy(rows()), truncated), ("cannot read as npy",)),
    ("npy not a numpy file", raw("data.npy", b"col1,col2\n1,2\n"), ("not a NumPy .npy file",)),
    ("npy object dtype", npy(np.array([{"a": 1}, None], dtype=object), allow_pickle=True),
     ("cannot read as npy",)),
    ("npy text dtype", npy(np.array([["1", "2"], ["3", "4"]])), ("has dtype <U1; only numbers",)),
    ("npy complex dtype", npy(np.ones((N, D), dtype=complex)), ("has dtype complex128; only numbers",)),
    ("npy NaN", npy(with_cell(np.nan)), ("{path}: array 'main' row 5, column 2: NaN",)),
    ("npy inf", npy(with_cell(-np.inf, 299, 3)), ("row 299, column 3: -inf (not a finite number)",)),
    ("npy float32 overflow", npy(with_cell(1e39, 7, 1)), ("row 7, column 1: 1e+39 does not fit float32",)),
    ("npy zero rows", npy(np.zeros((0, D))), ("0 row(s); at least 2 items are needed",)),
    ("npy one row", npy(np.zeros((1, D))), ("1 row(s); at least 2 items are needed",)),
    ("npy uint64 beyond int64", npy(np.full((N, 2), 2**63 + 1, dtype=np.uint64)),
     ("row 0, column 0: 9223372036854775809 does not fit int64",)),
    ("npy three dimensions", npy(np.zeros((N, 2, 2, 2))), ("must be 1-D or 2-D",)),
    # .npz
    ("npz empty file", raw("data.npz", b""), ("{path}: the file is empty (0 bytes)",)),
    ("npz truncated", then(npz(X=rows()), truncated), ("cannot read as npz", "BadZipFile")),
    ("npz labels of the wrong length", npz(X=rows(), y=np.zeros(N - 1, dtype=np.int64)),
     ("array 'y' has 299 rows but the features array has 300",)),
    ("npz no arrays", npz(), ("holds no arrays",)),
    ("npz NaN label", npz(X=rows(), y=np.where(np.arange(N) == 42, np.nan, 1.0)), ("array 'y' row 42, column 0: NaN",)),
    # .csv / .tsv
    ("csv empty file", raw("data.csv", b""), ("{path}: the file is empty (0 bytes)",)),
    ("csv header only", csv(["a,b,c"]), ("the table has a header but no rows",)),
    ("csv text after the sampled rows", csv(table(bad_row=700, bad_line="700,abc,1")),
     ("row 700 (line 702), column 'b': 'abc' is not a number",)),
    ("csv text in the first row", csv(table(bad_row=0, bad_line="0,abc,1")), ("non-numeric column(s) b",)),
    ("csv ragged row (extra field)", csv(table(bad_row=700, bad_line="1,2,3,4")),
     ("cannot read as csv", "Expected 3 fields in line 702, saw 4")),
    ("csv ragged row (missing field)", csv(table(bad_row=700, bad_line="1,2")),
     ("row 700 (line 702), column 'c': NaN (a missing value)",)),
    ("csv float32 overflow", csv(table(bad_row=900, bad_line="1,2,1e39")),
     ("row 900 (line 902), column 'c': 1e+39 does not fit float32",)),
    ("csv text label after the sampled rows", csv(table(bad_row=800, bad_line="1,2,3,cat", label=True)),
     ("row 800 (line 802), label column 'y': 'cat' is not a number",)),
    ("csv fractional label", csv(table(bad_row=500, bad_line="1,2,3,1.5", label=True)),
     ("row 500 (line 502), label column 'y': 1.5 is not a whole-number class label",)),
    ("csv label beyond int64", csv(table(bad_row=600, bad_line="1,2,3,1e20", label=True)),
     ("row 600 (line 602), label column 'y': 1e+20 is not a whole-number class label within int64",)),
    ("csv missing label", csv(table(bad_row=300, bad_line="1,2,3,", label=True)),
     ("row 300 (line 302), label column 'y': is missing",)),
    ("tsv text after the sampled rows", csv(table(bad_row=900, bad_line="1,2,x"), name="data.tsv"),
     ("row 900 (line 902), column 'c': 'x' is not a number",)),
    # .parquet
    ("parquet empty file", raw("data.parquet", b""), ("{path}: the file is empty (0 bytes)",)),
    ("parquet truncated", then(parquet(lambda: frame(rows())), truncated), ("cannot read as parquet",)),
    ("parquet text column", parquet(text_column), ("non-numeric column(s) a",)),
    ("parquet NaN", parquet(lambda: frame(with_cell(np.nan, 250, 1))), ("row 250, column 'b': NaN",)),
    ("parquet float32 overflow", parquet(lambda: frame(with_cell(-3e38 * 10, 9, 3))),
     ("row 9, column 'd': -3e+39 does not fit float32",)),
    # .zarr
    ("zarr damaged chunk", zarr_array(rows(), damage=damaged_chunk), ("cannot read as zarr",)),
    ("zarr broken metadata", zarr_array(rows(), damage=lambda p: (p / "zarr.json").write_text("{oops")),
     ("cannot read as zarr",)),
    ("zarr inf", zarr_array(with_cell(np.inf, 150, 1)), ("row 150, column 1: inf",)),
    ("zarr empty group", zarr_group(), ("holds no arrays",)),
    ("zarr labels of the wrong length", zarr_group(main=rows(), y=np.zeros(N + 5, dtype=np.int64)),
     ("array 'y' has 305 rows but the features array has 300",)),
    # .nc
    ("netcdf empty file", raw("data.nc", b""), ("{path}: the file is empty (0 bytes)",)),
    ("netcdf truncated", then(netcdf(rows()), truncated), ("cannot read as netcdf",)),
    ("netcdf not a netcdf file", raw("data.nc", b"\x00garbage" * 50), ("cannot read as netcdf",)),
    ("netcdf float32 overflow", netcdf(with_cell(1e300, 299, 0)), ("row 299, column 0: 1e+300 does not fit float32",)),
    # folder of parts
    ("folder NaN in a later part", parts(rows(150), with_cell(np.nan, 10, 3)[:150]),
     ("{part}: array 'main' row 10, column 3: NaN",)),
    ("folder parts of different widths", parts(rows(150), rows(150, D - 1)), ("differ from",)),
    ("folder without data files", empty_folder, ("the folder holds no data files",)),
    ("folder with a truncated part", parts(rows(150), rows(150), damage_last=True),
     ("{part}: cannot read as npy",)),
]


def _fragments(fragments: tuple[str, ...], path: Path) -> list[str]:
    last_part = sorted(path.glob("*.npy"))[-1] if any("{part}" in f for f in fragments) else path
    return [f.replace("{path}", str(path)).replace("{part}", str(last_part)) for f in fragments]


def test_there_are_at_least_twenty_five_cases():
    assert len(INGEST_CASES) + len(RUN_CASES) >= 25
    assert len({case[0] for case in INGEST_CASES}) == len(INGEST_CASES)


@pytest.mark.parametrize(("make", "fragments"), [pytest.param(*c[1:], id=c[0]) for c in INGEST_CASES])
def test_ingest_refuses_with_one_line(tmp_path, make, fragments):
    path = make(tmp_path)
    store = ArtifactStore(str(tmp_path / "store"))
    with pytest.raises((DataError, PipelineError)) as info:
        ingest(open_source(str(path)), store)
    message = str(info.value)
    assert "\n" not in message
    for fragment in _fragments(fragments, path):
        assert fragment in message, (fragment, message)
    assert store.list("datasets") == []  # nothing was published


# --------------------------------------------------------------------------- runs
def _run(tmp_path: Path, X: np.ndarray):
    from pipelines.flows import run_spec

    np.save(tmp_path / "data.npy", X)
    return run_spec(SPEC, str(tmp_path / "data.npy"), str(tmp_path / "store"), progress=False)


def _embedding(tmp_path: Path, result) -> np.ndarray:
    group = ArtifactStore(str(tmp_path / "store")).open_group("embeddings", result.embedding_key)
    return np.asarray(group["embedding"][...])


def constant_column() -> np.ndarray:
    X = rows(60)
    X[:, 1] = 7.0
    return X


# (id, data, None for a correct run or the fragment of the error)
RUN_CASES = [
    ("k >= n (5 rows, k = 5)", lambda: rows(5), None),
    ("two rows", lambda: rows(2), None),
    ("a constant column", constant_column, None),
    ("three distinct rows repeated", lambda: np.repeat(rows(3), 20, axis=0), None),
    ("duplicates only", lambda: np.tile(rows(1), (60, 1)), "all 60 rows are identical"),
    ("distances overflow float32", lambda: rows(60) * 1e20, "kNN 'p' (not stored): rows 0, 1, 2, 3, 4, ... lack "
                                                           "valid neighbours"),
]


@pytest.mark.parametrize(("data", "error"), [pytest.param(*c[1:], id=c[0]) for c in RUN_CASES])
def test_run_outcome(tmp_path, data, error):
    X = data()
    if error is None:
        with pytest.warns(UserWarning, match="n_neighbors=5 >= number of items") if len(X) <= 5 else nullcontext():
            result = _run(tmp_path, X)
        embedding = _embedding(tmp_path, result)
        assert embedding.shape == (len(X), 2) and np.isfinite(embedding).all()
        return
    with pytest.raises((DataError, PipelineError)) as info:
        _run(tmp_path, X)
    assert error in str(info.value) and "\n" not in str(info.value)
    store = ArtifactStore(str(tmp_path / "store"))
    assert store.list("knn") == [] and store.list("phases") == []  # no stage was published


@pytest.mark.slow
def test_embed_refuses_wrong_width_and_non_finite_rows(tmp_path):
    import zarr

    result = _run(tmp_path, rows(60))
    np.save(tmp_path / "wide.npy", rows(20, D + 1))
    wide = run_cli("embed", result.model_key, "--data", "wide.npy", "--no-prefect", "--no-progress",
                   "--store", str(tmp_path / "store"), workdir=tmp_path)
    assert_one_line_error(wide, f"wide.npy: rows have {D + 1} feature(s) but model {result.model_key[:12]} takes {D}")
    X = rows(20)
    X[3, 1], X[7, 2] = 1e39, np.nan  # a Zarr array is embedded where it lies, without ingest
    array = zarr.open_array(str(tmp_path / "new.zarr"), mode="w", shape=X.shape, chunks=(10, D), dtype=X.dtype)
    array[:] = X
    bad = run_cli("embed", result.model_key, "--data", "new.zarr", "--out", "out.npy", "--no-prefect",
                  "--no-progress", "--store", str(tmp_path / "store"), workdir=tmp_path)
    assert_one_line_error(bad, "2 row(s) are NaN or inf (rows 3, 7)")
    assert not (tmp_path / "out.npy").exists()
    stored = ArtifactStore(str(tmp_path / "store")).list("embeddings")
    assert [s.key for s in stored] == [result.embedding_key]  # only the training embedding


# --------------------------------------------------------------------------- the command
CLI_CASES = {"npy float32 overflow": False, "csv text after the sampled rows": True, "npz truncated": True,
             "zarr damaged chunk": True, "folder NaN in a later part": True}


@pytest.mark.parametrize(("make", "fragments"), [
    pytest.param(*c[1:], id=c[0], marks=[pytest.mark.slow] if CLI_CASES[c[0]] else [])
    for c in INGEST_CASES if c[0] in CLI_CASES])
def test_cli_exits_1_with_one_line(tmp_path, make, fragments):
    path = make(tmp_path)
    (tmp_path / "spec.yaml").write_text(SPEC)
    result = run_cli("run", "spec.yaml", "--data", str(path), "--no-prefect", "--no-progress", workdir=tmp_path)
    assert_one_line_error(result, *_fragments(fragments, path))


@pytest.mark.slow
def test_float32_overflow_is_refused_in_prefect_mode_and_nothing_is_cached(tmp_path):
    """The issue's crash: a 1e39 cell once gave kNN index -1, a SIGABRT, and a poisoned stage."""
    np.save(tmp_path / "data.npy", with_cell(1e39, 5, 3))
    (tmp_path / "spec.yaml").write_text(SPEC)
    for _ in range(2):
        result = run_cli("run", "spec.yaml", "--data", "data.npy", "--no-progress", workdir=tmp_path)
        assert_one_line_error(result, "data.npy: array 'main' row 5, column 3: 1e+39 does not fit float32")
    assert not (tmp_path / "store" / "knn").exists() or not any((tmp_path / "store" / "knn").iterdir())
    shutil.rmtree(tmp_path / "store", ignore_errors=True)
