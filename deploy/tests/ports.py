"""Free loopback ports for the servers the tests start.

On a machine whose users share out the ports, TEST_PORT_RANGE (``LOW-HIGH``) keeps them to
one's own; else any free port.
"""

import os
import random
import socket

import portpicker


def free_port() -> int:
    """A loopback port nothing listens on now."""
    shared = os.environ.get("TEST_PORT_RANGE")
    if not shared:
        return int(portpicker.pick_unused_port())
    low, _, high = shared.partition("-")
    ports = list(range(int(low), int(high) + 1))
    random.shuffle(ports)
    for port in ports:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in TEST_PORT_RANGE={shared}")
