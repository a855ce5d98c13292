"""Real datasets for paradime: loaders with pinned checks, and noisy copies for scale tests.

>>> from data import load_dataset
>>> X, y = load_dataset("pendigits")          # doctest: +SKIP
>>> ds = load_dataset("mnist"); ds.extras["is_test"].sum()   # doctest: +SKIP
10000

See :mod:`data.loaders` (lookup order), :mod:`data.registry` (sources and which check
applies to which dataset) and :mod:`data.noise` (``make_noisy_copies``).
"""

from data.download import ChecksumError, DownloadError
from data.loaders import Dataset, default_cache_dir, default_data_dirs, load_dataset
from data.noise import NoisyBlock, feature_std, make_noisy_copies, noisy_rows
from data.parsers import read_idx
from data.registry import DatasetInfo, dataset_info, list_datasets, register_dataset

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
