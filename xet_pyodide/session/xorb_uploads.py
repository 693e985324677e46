"""Concurrent xorb uploads with bounded concurrency; releases buffered bytes as they finish."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from ..io.cas import CasClient
from ..io.transport import Body, DetachedBody
from .budget import ByteBudget
from .packing import SealedXorb

#: How long an upload waits for the one sealed before it to have asked for its upload (a
#: safety bound: ordering only helps the server, it is never needed for correctness).
ORDER_WAIT_SECONDS = 5.0


class XorbUploader:
    """Uploads sealed xorbs in background tasks.

    Xorbs ask for their upload (the grant request, or the legacy POST) in the order they were
    submitted — sealed, i.e. file order — even though their bodies are detached and sent
    concurrently: a server may then hash a file's bytes as its xorbs arrive instead of
    rebuilding it at commit (the local Hub does: ``cas_server/xet_cas_server/hub/early.py``).
    Without the gate, a xorb whose detach finished first asked first.

    The first failure is kept in :attr:`error`; :meth:`wait_all` raises it once every task has
    settled. Nothing else in the session may upload a shard unless :meth:`wait_all` returned
    normally — that is what guarantees a shard never references a xorb that is not stored.
    """

    def __init__(
        self,
        cas: CasClient,
        budget: ByteBudget,
        *,
        max_concurrent: int,
        on_progress: Callable[[SealedXorb], None] | None = None,
    ) -> None:
        self._cas = cas
        self._budget = budget
        self._semaphore = asyncio.Semaphore(max_concurrent)
        self._on_progress = on_progress
        self._tasks: set[asyncio.Task[None]] = set()
        #: per submitted xorb (by sequence number), set once it asked for its upload or ended
        self._asked: dict[int, asyncio.Event] = {}
        self._submitted = 0
        self.error: BaseException | None = None
        self.uploaded: list[SealedXorb] = []
        self.bytes_sent = 0
        self.bytes_done = 0  # body bytes of finished uploads, sent or already present

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def submit(self, xorb: SealedXorb) -> None:
        seq = self._submitted
        self._submitted += 1
        self._asked[seq] = asyncio.Event()
        task = asyncio.ensure_future(self._upload(xorb, seq))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _upload(self, xorb: SealedXorb, seq: int) -> None:
        asked = self._asked[seq]
        body: Body | None = xorb.body
        assert body is not None
        size = len(body)
        held = size  # bytes of the budget this upload still holds
        try:
            async with self._semaphore:
                if self.error is not None:
                    return  # the commit is failing anyway: do not send more
                detached = await self._cas.detach_body(body, xorb.crc64)
                if detached is not None:
                    # The transport holds its own copy (in a page: a worker's Blob): free the
                    # Python buffer and its share of the budget now, not when the upload ends.
                    xorb.body = body = detached
                    self._budget.release(held)
                    held = 0
                before = self._asked.get(seq - 1)
                if before is not None:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(before.wait(), ORDER_WAIT_SECONDS)
                result = await self._cas.upload_xorb(
                    xorb.hash, body, xorb.crc64, on_asked=asked.set
                )
            self.bytes_sent += result.bytes_sent
            self.bytes_done += size
            self.uploaded.append(xorb)
            if self._on_progress is not None:
                self._on_progress(xorb)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            if self.error is None:
                self.error = exc
        finally:
            asked.set()
            self._asked.pop(seq - 1, None)  # only this upload waited on it
            if isinstance(body, DetachedBody):
                body.release()  # a worker holding the copy ends now (io/body_worker.py)
            xorb.body = None
            self._budget.release(held)

    async def wait_all(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self.error is not None:
            raise self.error

    async def aclose(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


__all__ = ["XorbUploader"]
