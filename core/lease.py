"""Single-flight reindexing across processes that share one Milvus: a lease record in Milvus.

The DATA_DIR file lock (`RunLog.exclusive`) only stops processes on one host that share a data
folder. A `docsbot index` CronJob and `docsbot serve` in separate pods share only the Milvus
server, so the lease lives there: a tiny collection `<COLLECTION>_lease` with one row
(holder, expiry). A run takes it when it is absent or expired, renews it every
`ttl / 3` seconds while it lives, and deletes it when it ends. A process that dies
leaves a lease that expires after `ttl` seconds; the next run then takes it over.

Milvus has no compare-and-set, so taking the lease is write-then-verify: write our holder id,
wait `settle` seconds, read it back. Of two processes that both found it free, the last
writer wins and the other sees the winner's id on its read-back and backs off. Expiry uses
each host's wall clock: keep the clocks in sync (NTP), as any lease does.

A second process does not wait: it fails at once with `ReindexBusyError`, naming the holder
and when its lease expires (a scheduled run simply tries again at its next slot).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from core.errors import ReindexBusyError, StoreError
from core.store import ChunkStore, DataType, MilvusException, quote

log = logging.getLogger(__name__)

_ROW = "lease"


class ReindexLease:
    def __init__(self, store: ChunkStore, ttl: float = 60.0, settle: float = 0.2) -> None:
        self.client = store.client
        self.name = f"{store.collection}_lease"
        self.ttl = ttl
        self.settle = settle
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        #: Set when a renewal found another holder: the run must stop writing.
        self.lost = False

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[ReindexLease]:
        """Hold the lease for the body; raises ReindexBusyError when another process holds it."""
        try:
            await asyncio.to_thread(self._take)
        except MilvusException as exc:
            raise StoreError(f"the reindex lease {self.name} could not be taken: {exc}") from exc
        self.lost = False
        renewer = asyncio.create_task(self._renew_forever(), name="reindex-lease")
        try:
            yield self
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            await asyncio.shield(asyncio.to_thread(self._release))

    # --- the record ----------------------------------------------------------------------------

    def _take(self) -> None:
        self._ensure_collection()
        current = self._read()
        if current and current["holder"] != self.holder and current["expires_ms"] > _now_ms():
            raise self._busy(current)
        if current and current["holder"] != self.holder:
            log.warning("taking over an expired reindex lease from %s", current["holder"])
        self._write()
        time.sleep(self.settle)
        current = self._read()
        if not current or current["holder"] != self.holder:
            raise self._busy(current or {"holder": "another process", "expires_ms": _now_ms()})
        log.info("reindex lease %s taken by %s", self.name, self.holder)

    def _renew(self) -> None:
        current = self._read()
        if not current or current["holder"] != self.holder:
            log.error(
                "the reindex lease was taken by %s while this run held it; stopping",
                current["holder"] if current else "nobody",
            )
            self.lost = True
            return
        self._write()

    def _release(self) -> None:
        try:
            current = self._read()
            if current and current["holder"] == self.holder:
                self.client.delete(self.name, filter=f"id == {quote(_ROW)}")
        except MilvusException as exc:  # it expires by itself
            log.warning("the reindex lease could not be released (%s); it expires in %.0f s", exc, self.ttl)

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                await asyncio.to_thread(self._renew)
            except MilvusException as exc:
                log.warning("the reindex lease could not be renewed: %s", exc)

    def _busy(self, current: dict[str, Any]) -> ReindexBusyError:
        until = datetime.fromtimestamp(current["expires_ms"] / 1000, UTC).isoformat(timespec="seconds")
        return ReindexBusyError(
            f"another docsbot process ({current['holder']}) is reindexing this collection on the "
            f"same Milvus (its lease runs until {until} unless renewed); try again when it is done"
        )

    def _read(self) -> dict[str, Any] | None:
        rows = self.client.query(
            self.name, filter=f"id == {quote(_ROW)}", output_fields=["holder", "expires_ms"]
        )
        return dict(rows[0]) if rows else None

    def _write(self) -> None:
        row = {
            "id": _ROW,
            "holder": self.holder,
            "expires_ms": _now_ms() + int(self.ttl * 1000),
            "unused": [0.0, 0.0],
        }
        self.client.upsert(self.name, [row])

    def _ensure_collection(self) -> None:
        if self.client.has_collection(self.name):
            self.client.load_collection(self.name)
            return
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=16)
        schema.add_field("holder", DataType.VARCHAR, max_length=512)
        schema.add_field("expires_ms", DataType.INT64)  # Unix time in ms
        schema.add_field("unused", DataType.FLOAT_VECTOR, dim=2)  # Milvus needs a vector field
        index = self.client.prepare_index_params()
        index.add_index("unused", index_type="AUTOINDEX", metric_type="L2")
        with contextlib.suppress(MilvusException):  # another process created it meanwhile
            self.client.create_collection(
                self.name, schema=schema, index_params=index, consistency_level="Strong"
            )
        self.client.load_collection(self.name)


def _now_ms() -> int:
    return int(time.time() * 1000)
