"""The lab's network namespaces: what it may touch and how it always cleans up.

Every namespace the lab creates is named ``kslib-<pid>-<lab>-<role>``. Commands run only inside
namespaces of that form that this process created (``ip -n``, ``ip netns exec``, or a thread that
joined one, see setns.py); the host's own namespace, links, routes and tables are never touched.
The namespaces go when the lab closes, when it is garbage-collected, at interpreter exit
(``weakref.finalize``), and, after a crash (kill -9, a dead kernel), when the next lab starts:
any ``kslib-<pid>-`` namespace whose process no longer runs is stale and removed.
"""
from __future__ import annotations

import itertools
import os
import shutil
import socket
import struct
import subprocess
import sys
import weakref

from .setns import RUN_DIR, in_netns

PREFIX = "kslib-"
_labs = itertools.count(1)
_SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
TOOLS = {"iptables": ("ip", "iptables-restore", "iptables-save"), "nftables": ("ip", "nft")}


class LabError(RuntimeError):
    """A kernel-lab command failed; the message has the command and what it printed."""


def tool(name: str) -> str | None:
    """Where a system tool is (root's sbin directories included)."""
    return shutil.which(name, path=_SBIN)


def available(mode: str | None = None) -> tuple[bool, str]:
    """(True, "") when this machine can run the kernel lab (for ``mode``, or for both iptables and
    nftables), else (False, the reason): Linux, root or CAP_NET_ADMIN, the tools, and a network
    namespace actually created and removed."""
    if not sys.platform.startswith("linux"):
        return False, f"the kernel lab needs Linux (this is {sys.platform})"
    if mode in ("ipvs", "ebpf"):
        return False, {"ipvs": "IPVS mode is model-only here: this kernel has no IPVS (CONFIG_IP_VS is not set)",
                       "ebpf": "eBPF mode is model-only: kslib renders Cilium's maps, it does not compile "
                               "or load BPF programs"}[mode]
    if not _net_admin():
        return False, "the kernel lab needs root or CAP_NET_ADMIN (network namespaces, iptables, nft)"
    needed = TOOLS.get(mode) or tuple(dict.fromkeys(TOOLS["iptables"] + TOOLS["nftables"]))
    missing = [t for t in needed if tool(t) is None]
    if missing:
        return False, (f"missing {', '.join(missing)}: install the Debian packages iptables nftables iproute2 "
                       "conntrack (`make system-deps` as root)")
    probe = Namespaces()
    try:
        probe.add("probe")
    except LabError as e:
        return False, f"cannot create a network namespace here: {e}"
    finally:
        probe.close()
    return True, ""


def _net_admin() -> bool:
    if os.geteuid() == 0:
        return True
    try:
        with open("/proc/self/status") as f:
            caps = next(line for line in f if line.startswith("CapEff:"))
    except (OSError, StopIteration):
        return False
    return bool(int(caps.split()[1], 16) >> 12 & 1)          # CAP_NET_ADMIN is capability 12


def _run(argv: list[str], input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    argv = [tool(argv[0]) or argv[0], *argv[1:]]
    done = subprocess.run(argv, input=input, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise LabError(f"{' '.join(argv[:6])}{' ...' if len(argv) > 6 else ''} failed "
                       f"(exit {done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    return done


def _ours(name: str) -> bool:
    return name.startswith(PREFIX) and os.path.exists(os.path.join(RUN_DIR, name))


def _delete(names: list[str]) -> None:
    """Remove namespaces (the finalizer: it must work at interpreter exit, so nothing fancy)."""
    gone = [n for n in names if _ours(n)]
    if gone:
        _run(["ip", "-batch", "-"], input="".join(f"netns delete {n}\n" for n in gone), check=False)
    names.clear()


def listed() -> list[str]:
    """Every namespace of any kslib lab on this machine (alive or stale)."""
    try:
        return sorted(n for n in os.listdir(RUN_DIR) if n.startswith(PREFIX))
    except FileNotFoundError:
        return []


def owner(name: str) -> int | None:
    try:
        return int(name[len(PREFIX):].split("-", 1)[0])
    except ValueError:
        return None


def clean_stale() -> list[str]:
    """Remove the namespaces of labs whose process is gone (a crash); returns their names."""
    stale = []
    for name in listed():
        pid = owner(name)
        if pid is None or pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            stale.append(name)
        except PermissionError:
            pass                        # alive, someone else's
    _delete(list(stale))
    return stale


class Namespaces:
    """The namespaces of one lab, removed together by ``close()`` (or the finalizer)."""

    def __init__(self):
        self.tag = f"{PREFIX}{os.getpid()}-{next(_labs)}"
        self.names: list[str] = []
        self._finalizer = weakref.finalize(self, _delete, self.names)

    def add(self, *roles: str) -> list[str]:
        names = [f"{self.tag}-{r}" for r in roles]
        self.names.extend(names)        # registered first: a half-made set is still removed
        _run(["ip", "-batch", "-"], input="".join(f"netns add {n}\n" for n in names))
        return names

    def _check(self, name: str) -> None:
        if name not in self.names:
            raise LabError(f"{name!r} is not a namespace of this lab: the lab never touches other namespaces")

    def ip(self, name: str, commands: list[str]) -> None:
        """``ip -n <name> -batch``: iproute2 commands inside one of the lab's namespaces."""
        self._check(name)
        if commands:
            _run(["ip", "-n", name, "-batch", "-"], input="".join(c + "\n" for c in commands))

    def exec(self, name: str, argv: list[str], input: str | None = None, check: bool = True):
        """A command inside one of the lab's namespaces (``ip netns exec``)."""
        self._check(name)
        return _run(["ip", "netns", "exec", name, tool(argv[0]) or argv[0], *argv[1:]], input=input, check=check)

    def run(self, name: str, fn, *args):
        """``fn(*args)`` in a thread inside the namespace (sockets made there stay there)."""
        self._check(name)
        return in_netns(name, fn, *args)

    def sysctl(self, name: str, settings: dict[str, object]) -> None:
        """Write sysctls (``net.ipv4.ip_forward``...) of one namespace: /proc/sys/net is per namespace."""
        def write():
            for key, value in settings.items():
                with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
                    f.write(str(value))
        self.run(name, write)

    def nfacct(self, name: str, counters: list[str]) -> None:
        """Create nfacct objects, as kube-proxy does at start-up before rules match on them."""
        if counters:
            self.run(name, _nfacct_add, counters)

    def close(self) -> None:
        self._finalizer()


# nfnetlink_acct: NFNL_SUBSYS_ACCT 7, NFNL_MSG_ACCT_NEW 0, attribute NFACCT_NAME 1
# (include/uapi/linux/netfilter/nfnetlink_acct.h); NETLINK_NETFILTER is protocol 12.
def _nfacct_add(names: list[str]) -> None:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)
    try:
        for seq, name in enumerate(names, 1):
            attr = name.encode() + b"\0"
            attr = struct.pack("=HH", 4 + len(attr), 1) + attr
            attr += b"\0" * (-len(attr) % 4)
            body = struct.pack("=BBH", socket.AF_UNSPEC, 0, 0) + attr
            flags = 0x1 | 0x4 | 0x400            # NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE
            sock.send(struct.pack("=IHHII", 16 + len(body), 7 << 8, flags, seq, 0) + body)
            reply = sock.recv(65536)
            err = struct.unpack_from("=i", reply, 16)[0]
            if err not in (0, -17):              # 0, or EEXIST: the counter is already there
                raise LabError(f"nfacct add {name}: {os.strerror(-err)}")
    finally:
        sock.close()
