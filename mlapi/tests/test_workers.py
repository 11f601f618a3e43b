"""Connections spread over the workers: the load board, and real servers with two workers."""

import json
import os
import signal
import socket
import time
from collections.abc import Callable

import pytest
from mlapi_support import RunningServer

from mlapi.workers import LoadBoard

READY_TIMEOUT_SECONDS = 180


# -- the load board ---------------------------------------------------------------------------


def test_a_new_board_has_every_slot_vacant() -> None:
    board = LoadBoard(3)
    assert len(board) == 3
    assert not board.others_less_loaded(0, 10**6)  # nobody else serves


def test_claim_takes_the_lowest_free_slot_and_none_when_full() -> None:
    board = LoadBoard(3)
    assert board.claim([]) == 0
    assert board.claim([0]) == 1
    assert board.claim([1]) == 0
    assert board.claim([0, 2]) == 1
    assert board.claim([0, 1, 2]) is None


def test_others_less_loaded_compares_serving_workers_only() -> None:
    board = LoadBoard(4)
    board.publish(0, 2)
    board.publish(1, 2)
    # slot 2 is vacant (starting or gone), slot 3 too: neither counts as idle
    assert not board.others_less_loaded(0, 2)  # a tie: take it
    assert board.others_less_loaded(0, 3)
    board.publish(2, 0)
    assert board.others_less_loaded(0, 1)
    assert not board.others_less_loaded(2, 0)  # its own slot is not "another"
    board.vacate(2)
    assert not board.others_less_loaded(0, 2)


def test_the_board_is_shared_with_forked_processes() -> None:
    board = LoadBoard(2)
    pid = os.fork()
    if pid == 0:  # the child publishes and leaves at once
        board.publish(1, 7)
        os._exit(0)
    os.waitpid(pid, 0)
    board.publish(0, 8)
    assert board.others_less_loaded(0, 8)  # sees the child's 7
    assert not board.others_less_loaded(0, 7)


def test_a_board_needs_a_slot() -> None:
    with pytest.raises(ValueError, match="at least one slot"):
        LoadBoard(0)


# -- real servers -----------------------------------------------------------------------------


def _ready_workers(server: RunningServer, count: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while server.output().count("Application startup complete") < count:
        assert time.monotonic() < deadline, f"{count} workers not ready:\n{server.output()}"
        time.sleep(0.2)
    time.sleep(0.5)  # the last one starts accepting right after it says so


def _serving_pids(server: RunningServer, request_ids: list[str]) -> list[int]:
    """The pid of the worker that logged each request id."""
    deadline = time.monotonic() + 30
    while True:
        pids = {}
        for line in server.output().splitlines():
            entry = json.loads(line)
            if entry.get("request_id") in request_ids:
                pids[entry["request_id"]] = entry["pid"]
        if len(pids) == len(request_ids) or time.monotonic() > deadline:
            return [pids.get(request_id, -1) for request_id in request_ids]
        time.sleep(0.1)


def _open_together(server: RunningServer, count: int) -> list[socket.socket]:
    port = int(server.url.rsplit(":", 1)[1])
    return [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(count)]


def _ask(conn: socket.socket, request_id: str) -> None:
    request = f"GET /api/v1/health HTTP/1.1\r\nHost: test\r\nX-Request-ID: {request_id}\r\n\r\n"
    conn.sendall(request.encode())
    assert conn.recv(65536).startswith(b"HTTP/1.1 200 ")


def _pids_of_connections_opened_together(server: RunningServer, tag: str) -> list[int]:
    conns = _open_together(server, 2)
    try:
        ids = [f"{tag}-{i}" for i in range(len(conns))]
        for conn, request_id in zip(conns, ids, strict=True):
            _ask(conn, request_id)
        return _serving_pids(server, ids)
    finally:
        for conn in conns:
            conn.close()
        time.sleep(0.2)  # let the workers see them closed


def test_connections_opened_together_go_to_different_workers(
    start_server: Callable[..., RunningServer],
) -> None:
    # With the stock accept loop, the first worker awake took both most of the time.
    server = start_server(workers="2")
    _ready_workers(server, 2)
    for trial in range(8):
        pids = _pids_of_connections_opened_together(server, f"together-{trial}")
        assert -1 not in pids, f"trial {trial}: a request was not logged"
        assert len(set(pids)) == 2, f"trial {trial}: both on worker {pids[0]}"
        assert set(pids) == set(server.worker_pids())


def test_a_stopped_worker_does_not_hold_up_connections(
    start_server: Callable[..., RunningServer],
) -> None:
    server = start_server(workers="2")
    _ready_workers(server, 2)
    stopped, running = server.worker_pids()
    os.kill(stopped, signal.SIGSTOP)  # serves nobody, and its board slot says idle
    try:
        conns = _open_together(server, 3)
        ids = [f"stopped-{i}" for i in range(3)]
        for conn, request_id in zip(conns, ids, strict=True):
            _ask(conn, request_id)  # answered: the running worker takes each in the end
        assert _serving_pids(server, ids) == [running] * 3
        for conn in conns:
            conn.close()
    finally:
        os.kill(stopped, signal.SIGCONT)


def test_a_replaced_worker_takes_its_share(start_server: Callable[..., RunningServer]) -> None:
    server = start_server(workers="2")
    _ready_workers(server, 2)
    killed = server.worker_pids()[0]
    os.kill(killed, signal.SIGKILL)
    _ready_workers(server, 3)  # the replacement is up
    pids = _pids_of_connections_opened_together(server, "replaced")
    assert killed not in pids
    assert set(pids) == set(server.worker_pids())
    assert len(set(pids)) == 2
