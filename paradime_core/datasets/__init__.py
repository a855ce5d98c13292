"""Real datasets for paradime: loaders with pinned checks, and noisy copies for scale tests.

>>> from paradime_core.datasets import load_dataset
>>> X, y = load_dataset("pendigits")          # doctest: +SKIP
>>> ds = load_dataset("mnist"); ds.extras["is_test"].sum()   # doctest: +SKIP
10000

See :mod:`paradime_core.datasets.loaders` (lookup order), :mod:`paradime_core.datasets.registry`
(sources and which check applies to which dataset) and :mod:`paradime_core.datasets.noise`
(``make_noisy_copies``).
"""

from paradime_core.datasets.download import ChecksumError, DownloadError
from paradime_core.datasets.loaders import (
    Dataset,
    default_cache_dir,
    default_data_dirs,
    load_dataset,
)
from paradime_core.datasets.noise import NoisyBlock, feature_std, make_noisy_copies, noisy_rows
from paradime_core.datasets.parsers import read_idx
from paradime_core.datasets.registry import (
    DatasetInfo,
    dataset_info,
    list_datasets,
    register_dataset,
)

__all__ = [
    "ChecksumError",
    "Dataset",
    "DatasetInfo",
    "DownloadError",
    "NoisyBlock",
    "dataset_info",
    "default_cache_dir",
    "default_data_dirs",
    "feature_std",
    "list_datasets",
    "load_dataset",
    "make_noisy_copies",
    "noisy_rows",
    "read_idx",
    "register_dataset",
]
