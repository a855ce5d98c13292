"""A Zarr store wrapper that records the digest of every file written through it.

Stage groups are written through it (see :mod:`pipelines.integrity`): the bytes of each
chunk and metadata file are digested while they are in memory anyway, so publishing a
stage needs no second read of what was just written.
"""

from __future__ import annotations

from collections.abc import Iterable

from zarr.abc.store import Store
from zarr.core.buffer import Buffer
from zarr.storage import WrapperStore

from pipelines import integrity


class HashingStore(WrapperStore[Store]):
    """A Zarr store that records the digest of every file written through it.

    Parameters
    ----------
    store : zarr.abc.store.Store
        The store the files go to.
    root : str
        The file system path of ``store``'s root (the key ``a/b`` is the file ``root/a/b``).
    """

    def __init__(self, store: Store, root: str):
        super().__init__(store)
        self.root = root.rstrip("/")

    def _with_store(self, store: Store) -> HashingStore:
        return type(self)(store, self.root)

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}" if key else self.root

    async def set(self, key: str, value: Buffer) -> None:
        integrity.record(self._path(key), value.as_numpy_array())
        await self._store.set(key, value)

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        # Whether it wrote is unknown: drop the record, publication hashes the file.
        integrity.forget(self._path(key))
        await self._store.set_if_not_exists(key, value)

    async def _set_many(self, values: Iterable[tuple[str, Buffer]]) -> None:
        for key, value in values:
            await self.set(key, value)

    async def delete(self, key: str) -> None:
        integrity.forget(self._path(key))
        await self._store.delete(key)

    async def delete_dir(self, prefix: str) -> None:
        integrity.forget(self._path(prefix))
        await self._store.delete_dir(prefix)
