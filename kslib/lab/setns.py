"""Doing something inside a network namespace without the caller ever leaving its own.

A thread that calls setns(2) moves only itself; a socket keeps the namespace it was created in for
its whole life. So ``in_netns`` runs a function in a short-lived thread that joins the namespace
first: sockets it returns live there, and /proc/sys/net it opens is that namespace's. The calling
thread (a notebook's kernel, a test) stays in its own namespace whatever happens.

Standard library only: the echo server runs this file's sibling as a plain script.
"""
from __future__ import annotations

import ctypes
import os
import threading

CLONE_NEWNET = 0x40000000
RUN_DIR = "/run/netns"              # where `ip netns add` pins a namespace (iproute2's NETNS_RUN_DIR)
_libc = ctypes.CDLL(None, use_errno=True)


def in_netns(name: str, fn, *args):
    """``fn(*args)`` in a fresh thread inside network namespace ``name``; its result, or its exception."""
    box: dict = {}

    def run():
        try:
            fd = os.open(os.path.join(RUN_DIR, name), os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns into network namespace {name}: {os.strerror(err)}")
            finally:
                os.close(fd)
            box["value"] = fn(*args)
        except BaseException as e:      # handed to the caller's thread
            box["error"] = e

    t = threading.Thread(target=run, name=f"netns {name}", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
