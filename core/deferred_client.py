"""A Milvus client that connects later, so `docsbot serve` can open its chats before a Milvus
server is up.

`ChunkStore` and the reindex lease call methods on their client. Until `connect()` has succeeded,
every call raises `StoreError` (the chats answer "the search index is not available right now",
/readyz names Milvus); after it, calls go straight to the real `MilvusClient`.

    client = DeferredMilvusClient(uri, token, timeout)
    store = ChunkStore(client.as_milvus_client(), collection, uri)
    ...
    await asyncio.to_thread(client.connect)   # retried in the background until it succeeds
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, cast

from core.errors import MilvusNotConnectedError
from core.store import ChunkStore

if TYPE_CHECKING:  # imported at run time by core.store, which hides MILVUS_URI from pymilvus
    from pymilvus import MilvusClient


class DeferredMilvusClient:
    def __init__(self, uri: str, token: str = "", timeout: float = 10.0) -> None:
        self._uri = uri
        self._token = token
        self._timeout = timeout
        self._client: MilvusClient | None = None
        self._lock = threading.Lock()

    @property
    def connected(self) -> bool:
        return self._client is not None

    def connect(self) -> None:
        """Connect now (blocking: call it in a worker thread). Raises StoreError while Milvus
        does not answer; a no-op once connected."""
        with self._lock:
            if self._client is None:
                self._client = ChunkStore.connect(self._uri, "", self._token, self._timeout).client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def as_milvus_client(self) -> MilvusClient:
        """This object, typed as the client it stands in for."""
        return cast("MilvusClient", self)

    def __getattr__(self, name: str) -> Any:
        client = self.__dict__.get("_client")
        if client is None:
            raise MilvusNotConnectedError(f"Milvus at {self.__dict__.get('_uri')} is not connected yet")
        return getattr(client, name)
