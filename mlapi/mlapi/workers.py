"""gunicorn's uvicorn worker, taking connections so that they spread evenly over the workers.

All workers wait on the one listening socket and the kernel wakes each of them for a new
connection; with the stock accept loop, whichever runs first takes every connection
waiting. A client that opens its keep-alive connections together (a connection pool, a
batch job's two threads, wrk) then has them all served by one worker, on one core, while
the others idle: 1,000-record requests on two connections ran at half the rate when both
landed on one of two workers (benchmarks/README.md).

So the workers publish how many connections each serves on a ``LoadBoard``, memory shared
with gunicorn's master, and a worker takes a waiting connection at once only if no other
worker serves fewer; otherwise it leaves it for ``HANDOFF_WAIT`` to a less busy one and
takes it itself if it is still waiting then (that worker may be stuck in a long request).
That is least-connections balancing: no connection is refused or dropped, and one is
accepted later only while an idler worker is due to take it.
"""

import asyncio
import logging
import mmap
import socket
import sys
from collections.abc import Callable, Iterable
from typing import Any

from gunicorn.arbiter import Arbiter
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

logger = logging.getLogger("mlapi")

#: How long a worker leaves a connection to a less busy one before taking it itself.
HANDOFF_WAIT = 0.01
#: After running out of file descriptors, how long before accepting again (as asyncio does).
ACCEPT_RETRY_DELAY = 1.0


class LoadBoard:
    """How many connections each worker serves, in memory shared across ``fork``.

    Created in gunicorn's master before the workers are forked; each worker gets a slot
    (``claim``, in the master) and publishes its load there once it accepts connections.
    A vacant slot (no worker, or one still starting) holds ``VACANT``.
    """

    VACANT = -1

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("a load board needs at least one slot")
        self._memory = mmap.mmap(-1, 8 * slots)  # anonymous and shared: seen by every fork
        self._loads = memoryview(self._memory).cast("q")
        for slot in range(slots):
            self._loads[slot] = self.VACANT

    def __len__(self) -> int:
        return len(self._loads)

    def claim(self, taken: Iterable[int]) -> int | None:
        """A free slot for a new worker (vacant until it publishes), or None if all are taken."""
        free = sorted(set(range(len(self._loads))) - set(taken))
        if not free:
            return None
        self._loads[free[0]] = self.VACANT
        return free[0]

    def publish(self, slot: int, load: int) -> None:
        """Record a worker's current load."""
        self._loads[slot] = load

    def vacate(self, slot: int) -> None:
        """Mark a slot free: its worker has exited."""
        self._loads[slot] = self.VACANT

    def others_less_loaded(self, slot: int, load: int) -> bool:
        """Whether another serving worker has fewer connections than ``load``."""
        return any(0 <= other < load for i, other in enumerate(self._loads) if i != slot)


class _TrackedConnections(set[Any]):
    """uvicorn's set of open connections, reporting every change."""

    def __init__(self, changed: Callable[[], None]) -> None:
        super().__init__()
        self._changed = changed

    def add(self, item: Any) -> None:
        super().add(item)
        self._changed()

    def discard(self, item: Any) -> None:
        super().discard(item)
        self._changed()

    def remove(self, item: Any) -> None:
        super().remove(item)
        self._changed()


class WorkerLoad:
    """This worker's load: its connections, and those its acceptors are setting up.

    Publishes every change on the board and tells the acceptors, which may then take
    connections they were leaving to others.
    """

    def __init__(self, board: LoadBoard, slot: int, connections: Callable[[], int]) -> None:
        self.board = board
        self.slot = slot
        self._connections = connections
        self.acceptors: list[BalancedAcceptor] = []

    def current(self) -> int:
        """Connections served or being set up."""
        return self._connections() + sum(a.pending for a in self.acceptors)

    def changed(self) -> None:
        """Publish the load; acceptors waiting on busier workers reconsider."""
        self.board.publish(self.slot, self.current())
        for acceptor in self.acceptors:
            acceptor.reconsider()

    def others_less_loaded(self) -> bool:
        """Whether another serving worker has fewer connections than this one."""
        return self.board.others_less_loaded(self.slot, self.current())


class BalancedAcceptor:
    """Accepts connections from one listening socket for this worker's event loop.

    Stands in for the ``asyncio.Server`` uvicorn would create: it has ``close`` and
    ``wait_closed``.
    """

    def __init__(
        self,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.Protocol],
        load: WorkerLoad,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._sock = sock
        self._factory = protocol_factory
        self._load = load
        self._loop = loop
        self.pending = 0  # accepted, not yet handed to a protocol
        self._handoff: asyncio.TimerHandle | None = None  # left to a less busy worker
        self._retry: asyncio.TimerHandle | None = None  # after an accept error
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        if not self._load.others_less_loaded():
            self._accept()
            return
        # Stop watching while a less busy worker takes it; take it after all if it does not.
        self._loop.remove_reader(self._sock.fileno())
        self._handoff = self._loop.call_later(HANDOFF_WAIT, self._after_handoff)

    def _after_handoff(self) -> None:
        self._handoff = None
        self._accept()
        self._watch()

    def reconsider(self) -> None:
        """After this worker's load changed: if it is now among the least busy, watch again."""
        if self._handoff is not None and not self._load.others_less_loaded():
            self._handoff.cancel()
            self._handoff = None
            self._watch()

    def _watch(self) -> None:
        if not self._closed and self._handoff is None and self._retry is None:
            self._loop.add_reader(self._sock.fileno(), self._on_readable)

    def _accept(self) -> None:
        try:
            conn, _ = self._sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # another worker took it, or the client gave up
        except OSError as exc:
            # Out of file descriptors or buffers: pause rather than spin on a ready socket.
            logger.error(
                "cannot accept a connection: %s; retrying in %.0f s", exc, ACCEPT_RETRY_DELAY
            )
            self._loop.remove_reader(self._sock.fileno())
            self._retry = self._loop.call_later(ACCEPT_RETRY_DELAY, self._after_retry)
            return
        conn.setblocking(False)
        if conn.family in (socket.AF_INET, socket.AF_INET6):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pending += 1
        self._load.changed()
        task = self._loop.create_task(self._connect(conn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _after_retry(self) -> None:
        self._retry = None
        self._watch()

    async def _connect(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._factory, conn)
        except OSError as exc:  # the client reset it before it was set up
            logger.debug("dropped a connection being set up: %s", exc)
            conn.close()
        finally:
            self.pending -= 1
            self._load.changed()

    def close(self) -> None:
        """Stop accepting; connections already accepted are served on."""
        if self._closed:
            return
        self._closed = True
        for timer in (self._handoff, self._retry):
            if timer is not None:
                timer.cancel()
        self._handoff = self._retry = None
        self._loop.remove_reader(self._sock.fileno())
        self._load.board.vacate(self._load.slot)

    async def wait_closed(self) -> None:
        """Return once every accepted connection has been handed to its protocol."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class BalancedServer(Server):
    """uvicorn's server, taking connections from gunicorn's sockets by ``BalancedAcceptor``."""

    def __init__(self, config: Any, board: LoadBoard, slot: int) -> None:
        super().__init__(config)
        self.board = board
        self.slot = slot

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if sockets is None or self.config.ssl is not None:  # not how mlapi-serve runs it
            await super().startup(sockets=sockets)
            return
        # uvicorn starts the app's lifespan and its bookkeeping, and listens on nothing...
        await super().startup(sockets=[])
        if self.should_exit:
            return
        # ...and the acceptors hand it the connections they take.
        loop = asyncio.get_running_loop()
        config = self.config
        load = WorkerLoad(self.board, self.slot, lambda: len(self.server_state.connections))
        self.server_state.connections = _TrackedConnections(load.changed)

        def create_protocol() -> asyncio.Protocol:
            protocol: asyncio.Protocol = config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=self.server_state, app_state=self.lifespan.state
            )
            return protocol

        load.changed()  # from now on this worker takes connections
        for sock in sockets:
            raw: socket.socket = getattr(sock, "sock", sock)  # gunicorn wraps its sockets
            load.acceptors.append(BalancedAcceptor(raw, create_protocol, load, loop))
        self.servers.extend(load.acceptors)  # type: ignore[arg-type]


class BalancedUvicornWorker(UvicornWorker):  # type: ignore[misc]
    """The uvicorn worker for gunicorn, with connections spread over the workers.

    Balances when the master gave it a ``load_board`` and ``board_slot`` (``assign_slot``);
    otherwise it is the stock uvicorn worker.
    """

    load_board: LoadBoard | None = None
    board_slot: int | None = None

    async def _serve(self) -> None:
        if self.load_board is None or self.board_slot is None:
            await super()._serve()
            return
        # UvicornWorker._serve, with the balanced server.
        self.config.app = self.wsgi
        server = BalancedServer(self.config, self.load_board, self.board_slot)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)


def assign_slot(board: LoadBoard, worker: Any, workers: Iterable[Any]) -> None:
    """In the master, before ``worker`` is forked: give it the board and a free slot."""
    taken = [w.board_slot for w in workers if getattr(w, "board_slot", None) is not None]
    slot = board.claim(taken)
    if slot is not None:
        worker.load_board = board
        worker.board_slot = slot


def release_slot(board: LoadBoard, worker: Any) -> None:
    """In the master, once ``worker`` has exited: free its slot."""
    slot = getattr(worker, "board_slot", None)
    if slot is not None:
        board.vacate(slot)
