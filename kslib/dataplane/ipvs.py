"""The kernel's IPVS state and its schedulers, as arrays a numba kernel can use.

Model of net/netfilter/ipvs (ip_vs_ctl.c for the destination list, ip_vs_{rr,wrr,lc,wlc,sed,nq,sh,dh,mh}.c
for the schedulers) written from the kernel sources; the newer kernels' hashes are used: sh/dh
``hash_32`` (include/linux/hash.h) and mh ``hsiphash`` (lib/siphash.c, the 64-bit variant).

Layout (all int64):

``vs`` (nvs, V_COLS), one row per virtual service:
    V_NODE, V_ADDR, V_PROTO (6/17/132), V_PORT, V_SCHED (SCHED_* code), V_FLAGS (kernel bits:
    IP_VS_SVC_F_PERSISTENT 0x1, SCHED1 0x8 = sh/mh-fallback, SCHED2 0x10 = sh/mh-port),
    V_PERSIST (persistence timeout in seconds, 0 = none),
    V_D0, V_D1 (its destinations are rows V_D0..V_D1-1 of ``dests``, in the kernel's list order:
    a destination is added at the list head, so newest first),
    V_T0, V_T1 (its sh/dh/mh lookup table is vtab[V_T0:V_T1]; entries are dest rows or -1),
    V_LAST (rr/wrr: the last chosen dest row, -1 = the list head), V_CW, V_MW, V_DI (wrr mark).
``dests`` (nd, D_COLS):
    D_VS, D_ADDR, D_PORT, D_WEIGHT, D_LASTW (mh: the last non-zero weight), D_ACTIVE, D_INACT
    (the kernel's activeconns/inactconns, which the engine keeps up to date), D_SEQ (when it was
    added, see RealServer.added: tells a delete-and-re-add from a survivor).
``vtab`` (ntab,): the concatenated lookup tables.

No destination is ever OVERLOADed here (kube-proxy sets no connection thresholds), so "available"
means weight > 0.
"""
from __future__ import annotations

import ipaddress
import math
from collections import namedtuple
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

if TYPE_CHECKING:  # pragma: no cover
    from kslib.proxy.ipvs import VirtualServer

# ---- layout --------------------------------------------------------------------------------------------
(V_NODE, V_ADDR, V_PROTO, V_PORT, V_SCHED, V_FLAGS, V_PERSIST, V_D0, V_D1, V_T0, V_T1,
 V_LAST, V_CW, V_MW, V_DI) = range(15)
V_COLS = 15
D_VS, D_ADDR, D_PORT, D_WEIGHT, D_LASTW, D_ACTIVE, D_INACT, D_SEQ = range(8)
D_COLS = 8

SCHED_RR, SCHED_WRR, SCHED_LC, SCHED_WLC, SCHED_SED, SCHED_NQ, SCHED_SH, SCHED_DH, SCHED_MH = range(9)
SCHEDULERS = ("rr", "wrr", "lc", "wlc", "sed", "nq", "sh", "dh", "mh")

# include/uapi/linux/ip_vs.h
IP_VS_SVC_F_PERSISTENT = 0x1
IP_VS_SVC_F_HASHED = 0x2          # kernel-internal, never in V_FLAGS
IP_VS_SVC_F_SCHED1 = 0x8          # sh-fallback / mh-fallback
IP_VS_SVC_F_SCHED2 = 0x10         # sh-port / mh-port (kube-proxy's FlagSourceHash)
IP_VS_SVC_F_SCHED3 = 0x20
SCHED_FLAG_BITS = {"sh-fallback": IP_VS_SVC_F_SCHED1, "mh-fallback": IP_VS_SVC_F_SCHED1, "flag-1": IP_VS_SVC_F_SCHED1,
                   "sh-port": IP_VS_SVC_F_SCHED2, "mh-port": IP_VS_SVC_F_SCHED2, "flag-2": IP_VS_SVC_F_SCHED2,
                   "flag-3": IP_VS_SVC_F_SCHED3}
PROTO_NUMBERS = {"TCP": 6, "UDP": 17, "SCTP": 132}

SH_TAB_BITS = 8                   # CONFIG_IP_VS_SH_TAB_BITS default
SH_TAB_SIZE = 1 << SH_TAB_BITS
DH_TAB_BITS = 8                   # CONFIG_IP_VS_DH_TAB_BITS default
DH_TAB_SIZE = 1 << DH_TAB_BITS
MH_PRIMES = (251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071)
MH_TAB_INDEX = 12                 # CONFIG_IP_VS_MH_TAB_INDEX default
MH_TAB_SIZE = MH_PRIMES[MH_TAB_INDEX - 8]     # 4093
MH_TAB_BITS = MH_TAB_INDEX // 2               # 6: the "MH highest bits" of ip_vs_mh_shift_weight
# ip_vs_mh.c generate_hash_secret: fixed keys (hsiphash_key_t is two unsigned longs)
MH_KEY1 = (2654435761, 2654435761)
MH_KEY2 = (2654446892, 2654446892)

_U64 = np.uint64
_M32 = np.uint64(0xFFFFFFFF)


# ---- hashes ----------------------------------------------------------------------------------------------
@njit(cache=True)
def hash_32(val, bits):
    """include/linux/hash.h hash_32 (generic __hash_32): the top ``bits`` of val * GOLDEN_RATIO_32, in u32."""
    h = (np.uint64(val) * np.uint64(0x61C88647)) & np.uint64(0xFFFFFFFF)
    return np.int64(h >> np.uint64(32 - bits))


@njit(cache=True)
def _rotl(x, b):
    return (x << np.uint64(b)) | (x >> np.uint64(64 - b))


@njit(cache=True)
def _sipround(v0, v1, v2, v3):
    v0 += v1
    v1 = _rotl(v1, 13)
    v1 ^= v0
    v0 = _rotl(v0, 32)
    v2 += v3
    v3 = _rotl(v3, 16)
    v3 ^= v2
    v0 += v3
    v3 = _rotl(v3, 21)
    v3 ^= v0
    v2 += v1
    v1 = _rotl(v1, 17)
    v1 ^= v2
    v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


@njit(cache=True)
def _hsip_finish(v0, v1, v2, v3, b):
    # lib/siphash.c, BITS_PER_LONG == 64: "HalfSipHash1-3" is SipHash-1-3 there; HPOSTAMBLE has one
    # round after the last word and three finalisation rounds, and the u64 result is cut to u32
    v3 ^= b
    v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    v0 ^= b
    v2 ^= np.uint64(0xFF)
    v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    return np.int64((v0 ^ v1 ^ v2 ^ v3) & np.uint64(0xFFFFFFFF))


@njit(cache=True)
def hsiphash(data, k0, k1):
    """The kernel's hsiphash(data, len(data), key) on a 64-bit kernel, for a uint8 array."""
    k0 = np.uint64(k0)
    k1 = np.uint64(k1)
    n = data.shape[0]
    # PREAMBLE: the SipHash constants "somepseudorandomlygeneratedbytes" xored with the key
    v0 = np.uint64(0x736F6D6570736575) ^ k0
    v1 = np.uint64(0x646F72616E646F6D) ^ k1
    v2 = np.uint64(0x6C7967656E657261) ^ k0
    v3 = np.uint64(0x7465646279746573) ^ k1
    b = np.uint64(n) << np.uint64(56)
    full = n - n % 8
    for i in range(0, full, 8):
        m = np.uint64(0)
        for j in range(8):
            m |= np.uint64(data[i + j]) << np.uint64(8 * j)          # little-endian 64-bit word
        v3 ^= m
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)                  # one compression round
        v0 ^= m
    for j in range(n - full):
        b |= np.uint64(data[full + j]) << np.uint64(8 * j)
    return _hsip_finish(v0, v1, v2, v3, b)


@njit(cache=True)
def hsiphash_u32(value, k0, k1):
    """hsiphash of one u32 stored in host (little-endian) order, i.e. hsiphash_1u32(value)."""
    k0 = np.uint64(k0)
    k1 = np.uint64(k1)
    v0 = np.uint64(0x736F6D6570736575) ^ k0
    v1 = np.uint64(0x646F72616E646F6D) ^ k1
    v2 = np.uint64(0x6C7967656E657261) ^ k0
    v3 = np.uint64(0x7465646279746573) ^ k1
    b = (np.uint64(4) << np.uint64(56)) | (np.uint64(value) & np.uint64(0xFFFFFFFF))
    return _hsip_finish(v0, v1, v2, v3, b)


@njit(cache=True)
def sh_hashkey(addr, port, offset):
    """ip_vs_sh.c ip_vs_sh_hashkey (IPv4, newer kernels): (offset + hash_32(port + addr, 8)) & 255."""
    return (offset + hash_32((port + addr) & 0xFFFFFFFF, SH_TAB_BITS)) & (SH_TAB_SIZE - 1)


@njit(cache=True)
def dh_hashkey(addr):
    """ip_vs_dh.c ip_vs_dh_hashkey (newer kernels): hash_32(addr, 8)."""
    return hash_32(addr & 0xFFFFFFFF, DH_TAB_BITS)


@njit(cache=True)
def mh_hashkey(addr, port, k0, k1, offset):
    """ip_vs_mh.c ip_vs_mh_hashkey: hsiphash of the u32 offset + port + addr (not yet reduced mod M)."""
    return hsiphash_u32((offset + port + addr) & 0xFFFFFFFF, k0, k1)


# ---- schedulers ------------------------------------------------------------------------------------------
@njit(cache=True)
def _rr(vs, dests, v):
    # ip_vs_rr.c: walk on from the last chosen dest (or the head), wrapping once, to the first one with
    # weight > 0; the pointer moves only on a hit
    d0, d1 = vs[v, V_D0], vs[v, V_D1]
    n = d1 - d0
    last = vs[v, V_LAST]
    start = 0 if last < 0 else last - d0 + 1
    for k in range(n):
        row = d0 + (start + k) % n
        if dests[row, D_WEIGHT] > 0:
            vs[v, V_LAST] = row
            return row
    return -1


@njit(cache=True)
def _wrr(vs, dests, v):
    # ip_vs_wrr.c ip_vs_wrr_schedule, loop for loop (cl = V_LAST, -1 is the list head)
    d0, d1 = vs[v, V_D0], vs[v, V_D1]
    n = d1 - d0
    mw, di = vs[v, V_MW], vs[v, V_DI]
    cur = vs[v, V_LAST]
    if mw == 0:
        return -1                                   # err_noavail: mark->cl unchanged
    last = cur
    stop = -2
    last_pass = False
    restarted = False
    cw = vs[v, V_CW]
    while True:
        i = 0 if cur < 0 else cur - d0 + 1
        while i < n:
            row = d0 + i
            if dests[row, D_WEIGHT] >= cw:
                vs[v, V_LAST] = row
                vs[v, V_CW] = cw
                return row
            if row == stop:
                vs[v, V_LAST] = row                 # err_over with dest == stop
                vs[v, V_CW] = cw
                return -1
            i += 1
        cur = -1
        cw -= di
        if cw <= 0:
            cw = mw
            if last_pass or last < 0:
                vs[v, V_LAST] = -1                  # err_over at the head
                vs[v, V_CW] = cw
                return -1
            restarted = True
        last_pass = cw <= di
        if last_pass and restarted and last >= 0:
            stop = last


@njit(cache=True)
def _least(vs, dests, v, kind):
    # lc, wlc, sed, nq; overhead = (activeconns << 8) + inactconns (ip_vs_dest_conn_overhead) for lc/wlc,
    # activeconns + 1 for sed/nq; ties keep the earlier dest because the comparisons are strict
    d0, d1 = vs[v, V_D0], vs[v, V_D1]
    least = -1
    loh = 0
    for row in range(d0, d1):
        w = dests[row, D_WEIGHT]
        act = dests[row, D_ACTIVE]
        if kind == SCHED_LC:
            if w == 0:
                continue
            doh = (act << 8) + dests[row, D_INACT]
            if least < 0 or doh < loh:
                least, loh = row, doh
        elif kind == SCHED_NQ:
            if w == 0:
                continue
            doh = act + 1
            if act == 0:                            # an idle server is taken at once
                return row
            if least < 0 or loh * w > doh * dests[least, D_WEIGHT]:
                least, loh = row, doh
        else:
            doh = (act << 8) + dests[row, D_INACT] if kind == SCHED_WLC else act + 1
            if least < 0:
                if w > 0:                           # the first candidate needs weight > 0 ...
                    least, loh = row, doh
            elif loh * w > doh * dests[least, D_WEIGHT]:   # ... a later weight-0 dest can never win
                least, loh = row, doh
    return least


@njit(cache=True)
def _hashed(vs, dests, vtab, v, key_addr, port, kind):
    # sh/mh: lookup, then (SCHED1 flag) the fallback walk of ip_vs_{sh,mh}_get_fallback; dh: lookup only
    t0 = vs[v, V_T0]
    size = vs[v, V_T1] - t0
    if size <= 0:
        return -1
    fallback = (vs[v, V_FLAGS] & IP_VS_SVC_F_SCHED1) != 0 and kind != SCHED_DH
    if kind == SCHED_SH:
        ihash = sh_hashkey(key_addr, port, 0)
    elif kind == SCHED_DH:
        ihash = dh_hashkey(key_addr)
    else:
        ihash = mh_hashkey(key_addr, port, MH_KEY1[0], MH_KEY1[1], 0) % size
    d = vtab[t0 + ihash]
    if d < 0:
        return -1
    if dests[d, D_WEIGHT] > 0:
        return d
    if not fallback:
        return -1
    for offset in range(size):
        roffset = (offset + ihash) % size
        if kind == SCHED_SH:
            h = sh_hashkey(key_addr, port, roffset)
        else:
            h = mh_hashkey(key_addr, port, MH_KEY1[0], MH_KEY1[1], roffset) % size
        d = vtab[t0 + h]
        if d < 0:
            break
        if dests[d, D_WEIGHT] > 0:
            return d
    return -1


@njit(cache=True)
def schedule(vs, dests, vtab, v, saddr, sport, daddr):
    """The destination row the kernel's scheduler of virtual service ``v`` picks for a new connection
    from saddr:sport to daddr, or -1 when it finds none. rr/wrr update their state in ``vs``.
    sh/mh hash the source port only with the SCHED2 (sh-port/mh-port) flag; dh hashes daddr."""
    kind = vs[v, V_SCHED]
    if vs[v, V_D1] <= vs[v, V_D0]:
        return -1
    if kind == SCHED_RR:
        return _rr(vs, dests, v)
    if kind == SCHED_WRR:
        return _wrr(vs, dests, v)
    if kind == SCHED_SH or kind == SCHED_MH:
        port = sport if (vs[v, V_FLAGS] & IP_VS_SVC_F_SCHED2) != 0 else 0
        return _hashed(vs, dests, vtab, v, saddr, port, kind)
    if kind == SCHED_DH:
        return _hashed(vs, dests, vtab, v, daddr, 0, kind)
    return _least(vs, dests, v, kind)


# ---- lookup tables ---------------------------------------------------------------------------------------
@njit(cache=True)
def fill_sh(out, weights):
    """ip_vs_sh_reassign: walk the 256 buckets cycling through the list; a dest keeps the next
    ``weight`` buckets (a weight-0 dest still gets one, as ++count >= 0 holds at once)."""
    n = weights.shape[0]
    if n == 0:
        out[:] = -1
        return
    p = 0
    count = 0
    for i in range(out.shape[0]):
        out[i] = p
        count += 1
        if count >= weights[p]:
            p = (p + 1) % n
            count = 0


@njit(cache=True)
def fill_dh(out, n):
    """ip_vs_dh_reassign: one bucket per dest, cycling through the list (weights play no part)."""
    for i in range(out.shape[0]):
        out[i] = i % n if n > 0 else -1


@njit(cache=True)
def _fls(x):
    r = 0
    while x > 0:
        r += 1
        x >>= 1
    return r


@njit(cache=True)
def fill_mh(out, addrs, ports, last_weights):
    """ip_vs_mh.c: gcd/shift of the last weights, per-dest offset/skip from hsiphash, then Maglev
    populate in list order, each dest taking ``turns`` consecutive claims per round."""
    m = out.shape[0]
    n = addrs.shape[0]
    g = 0
    maxw = 0
    for i in range(n):
        w = last_weights[i]
        if w > 0:
            if g > 0:
                a, b = w, g
                while b:
                    a, b = b, a % b
                g = a
            else:
                g = w
        if w > maxw:
            maxw = w
    if g < 1:                                       # no dest, or every last weight 0: empty table
        out[:] = -1
        return
    shift = _fls(maxw // g) - MH_TAB_BITS
    rshift = shift if shift > 0 else 0
    perm = np.empty(n, np.int64)
    skip = np.empty(n, np.int64)
    turns = np.empty(n, np.int64)
    for i in range(n):
        perm[i] = mh_hashkey(addrs[i], ports[i], MH_KEY1[0], MH_KEY1[1], 0) % m
        skip[i] = mh_hashkey(addrs[i], ports[i], MH_KEY2[0], MH_KEY2[1], 0) % (m - 1) + 1
        lw = last_weights[i]
        t = (lw // g) >> rshift
        turns[i] = t if t != 0 else (1 if lw != 0 else 0)
    taken = np.zeros(m, np.bool_)
    filled = 0
    dt_count = 0
    while filled < m:
        i = 0
        while i < n:
            if turns[i] < 1:
                i += 1
                continue
            c = perm[i]
            while taken[c]:
                perm[i] += skip[i]
                if perm[i] >= m:
                    perm[i] -= m
                c = perm[i]
            taken[c] = True
            out[c] = i
            filled += 1
            if filled == m:
                return
            dt_count += 1
            if dt_count >= turns[i]:
                dt_count = 0
                i += 1


# ---- building the arrays ---------------------------------------------------------------------------------
IpvsTables = namedtuple("IpvsTables", ["vs", "dests", "vtab", "vs_index", "dest_index"])
IpvsTables.__doc__ = """The kernel's IPVS state of every node. vs_index: {(node, addr, proto, port): v}
with addr the IPv4 address as an int and proto 6/17/132; dest_index: {(vs key, daddr, dport): row}."""


def ip_int(text: str) -> int:
    ip = ipaddress.ip_address(text)
    if ip.version != 4:
        raise ValueError(f"IPVS model arrays hold IPv4 addresses only, not {text!r}")
    return int(ip)


def sched_flags(vs: "VirtualServer") -> int:
    """The kernel flag bits of a VirtualServer (persistent, and the -b scheduler flags)."""
    bits = IP_VS_SVC_F_PERSISTENT if vs.persistent is not None else 0
    for name in vs.flags:
        if name not in SCHED_FLAG_BITS:
            raise ValueError(f"unknown IPVS scheduler flag {name!r}; valid: {', '.join(sorted(SCHED_FLAG_BITS))}")
        bits |= SCHED_FLAG_BITS[name]
    return bits


def _rr_pointer(prev_keys: list, prev_seqs: list, new_keys: list, new_seqs: list, last: int):
    """Where the rr/wrr pointer of the previous list (index ``last`` or -1 = head) sits after the kernel
    turned the previous list into the new one, replayed in kube-proxy's order: first the additions in
    the order they were made (a re-added dest is deleted just before, syncEndpoint), then the deletions.
    ip_vs_rr_del_dest moves a pointer on a deleted dest to its predecessor (or the head).
    Returns the key the pointer is on, or None for the head."""
    cur = list(zip(prev_keys, prev_seqs))
    ptr = cur[last] if 0 <= last < len(cur) else None
    old = set(cur)
    added = sorted((s, k) for k, s in zip(new_keys, new_seqs) if (k, s) not in old)

    def delete(item):
        nonlocal ptr
        i = cur.index(item)
        if ptr == item:
            ptr = cur[i - 1] if i > 0 else None
        del cur[i]

    for seq, key in added:
        same = [it for it in cur if it[0] == key]
        for it in same:                                # MoveRSOutofGracefulDeleteList, then AddRealServer
            delete(it)
        cur.insert(0, (key, seq))
    keep = set(zip(new_keys, new_seqs))
    for it in [it for it in cur if it not in keep]:
        delete(it)
    return None if ptr is None else ptr[0]


def _wrr_mark(weights: list[int]) -> tuple[int, int]:
    """(di, mw): gcd of the positive weights (1 if none) and max weight - (di - 1)."""
    g = 0
    for w in weights:
        if w > 0:
            g = math.gcd(w, g) if g > 0 else w
    di = g or 1
    return di, max(weights, default=0) - (di - 1)


def build(virtual_servers: list[tuple[int, "VirtualServer"]], previous: IpvsTables | None = None) -> IpvsTables:
    """Pack (node index, VirtualServer) pairs into the kernel's arrays, carrying kernel state from
    ``previous`` by key: active/inactive counters of surviving destinations (also of a re-added one:
    the kernel takes it back from its trash with its connections), mh's last weights, the rr pointer
    (ip_vs_rr_del_dest) and the wrr mark, reset on any destination change (ip_vs_wrr_dest_changed,
    applied once with the final weights where the kernel applies it after every single change).

    ``VirtualServer.destinations`` must be in the kernel's list order (newest first) and each
    RealServer's ``added`` must identify the add operation (kube-proxy's IpvsProxier numbers them).
    """
    prev_rows: dict = {}
    prev_vs: dict = {}
    if previous is not None:
        pvs, pd = previous.vs, previous.dests
        for key, v in previous.vs_index.items():
            rows = range(pvs[v, V_D0], pvs[v, V_D1])
            prev_vs[key] = (v, [(int(pd[r, D_ADDR]), int(pd[r, D_PORT])) for r in rows],
                            [int(pd[r, D_SEQ]) for r in rows], [int(pd[r, D_WEIGHT]) for r in rows])
        for (vkey, daddr, dport), r in previous.dest_index.items():
            prev_rows[(vkey, daddr, dport, int(pd[r, D_SEQ]))] = r

    nvs = len(virtual_servers)
    nd = sum(len(vsv.destinations) for _, vsv in virtual_servers)
    vs = np.zeros((nvs, V_COLS), np.int64)
    dests = np.zeros((nd, D_COLS), np.int64)
    tables = []
    ntab = 0
    vs_index: dict = {}
    dest_index: dict = {}
    row = 0
    for v, (node, vsv) in enumerate(virtual_servers):
        if vsv.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler {vsv.scheduler!r} is not modelled; valid: {', '.join(SCHEDULERS)}")
        proto = PROTO_NUMBERS[vsv.protocol.upper()]
        vkey = (node, ip_int(vsv.address), proto, vsv.port)
        if vkey in vs_index:
            raise ValueError(f"duplicate virtual service {vsv.protocol} {vsv.address}:{vsv.port} on node {node}")
        vs_index[vkey] = v
        sched = SCHEDULERS.index(vsv.scheduler)
        vs[v, V_NODE], vs[v, V_ADDR], vs[v, V_PROTO], vs[v, V_PORT] = vkey
        vs[v, V_SCHED] = sched
        vs[v, V_FLAGS] = sched_flags(vsv)
        vs[v, V_PERSIST] = vsv.persistent or 0
        vs[v, V_D0] = row
        keys, seqs, weights = [], [], []
        for rs in vsv.destinations:
            daddr = ip_int(rs.address)
            seq = int(getattr(rs, "added", 0))
            dests[row, D_VS], dests[row, D_ADDR], dests[row, D_PORT] = v, daddr, rs.port
            dests[row, D_WEIGHT], dests[row, D_SEQ] = rs.weight, seq
            # __ip_vs_update_dest: last_weight follows every add and every non-zero weight
            dests[row, D_LASTW] = rs.weight
            same = prev_rows.get((vkey, daddr, rs.port, seq))
            if same is not None:
                if rs.weight == 0:
                    dests[row, D_LASTW] = previous.dests[same, D_LASTW]
            # a re-added dest comes back from the kernel's trash with its connection counters
            old = same if same is not None else (previous.dest_index.get((vkey, daddr, rs.port))
                                                  if previous is not None else None)
            if old is not None:
                dests[row, D_ACTIVE] = previous.dests[old, D_ACTIVE]
                dests[row, D_INACT] = previous.dests[old, D_INACT]
            if (vkey, daddr, rs.port) in dest_index:
                raise ValueError(f"duplicate destination {rs.address}:{rs.port} in {vsv.address}:{vsv.port}")
            dest_index[(vkey, daddr, rs.port)] = row
            keys.append((daddr, rs.port))
            seqs.append(seq)
            weights.append(rs.weight)
            row += 1
        vs[v, V_D1] = row
        _carry_sched_state(vs, v, sched, keys, seqs, weights, prev_vs.get(vkey), previous)
        # lookup tables
        n = row - vs[v, V_D0]
        size = {SCHED_SH: SH_TAB_SIZE, SCHED_DH: DH_TAB_SIZE, SCHED_MH: MH_TAB_SIZE}.get(sched, 0)
        vs[v, V_T0], vs[v, V_T1] = ntab, ntab + size
        if size:
            tab = np.empty(size, np.int64)
            if sched == SCHED_SH:
                fill_sh(tab, np.array(weights, np.int64))
            elif sched == SCHED_DH:
                fill_dh(tab, n)
            else:
                d0 = vs[v, V_D0]
                fill_mh(tab, dests[d0:row, D_ADDR].copy(), dests[d0:row, D_PORT].copy(),
                        dests[d0:row, D_LASTW].copy())
            tab[tab >= 0] += vs[v, V_D0]
            tables.append(tab)
            ntab += size
    vtab = np.concatenate(tables) if tables else np.zeros(0, np.int64)
    return IpvsTables(vs, dests, vtab, vs_index, dest_index)


def _carry_sched_state(vs, v, sched, keys, seqs, weights, prev, previous) -> None:
    d0 = int(vs[v, V_D0])
    di, mw = _wrr_mark(weights)
    vs[v, V_LAST] = -1
    vs[v, V_DI], vs[v, V_MW], vs[v, V_CW] = di, mw, mw      # ip_vs_wrr_init_svc
    if prev is None or previous is None:
        return
    pv, pkeys, pseqs, pweights = prev
    if previous.vs[pv, V_SCHED] != sched:                    # ip_vs_edit_service: new scheduler state
        return
    plast = int(previous.vs[pv, V_LAST])
    plast_i = plast - int(previous.vs[pv, V_D0]) if plast >= 0 else -1
    if sched == SCHED_RR:
        key = _rr_pointer(pkeys, pseqs, keys, seqs, plast_i)
        vs[v, V_LAST] = -1 if key is None else d0 + keys.index(key)
    elif sched == SCHED_WRR:
        cw = int(previous.vs[pv, V_CW])
        if (pkeys, pseqs, pweights) == (keys, seqs, weights):
            vs[v, V_LAST] = -1 if plast_i < 0 else d0 + plast_i
            vs[v, V_CW], vs[v, V_MW], vs[v, V_DI] = cw, previous.vs[pv, V_MW], previous.vs[pv, V_DI]
            return
        # ip_vs_wrr_dest_changed: back to the head, new di/mw, cw clamped
        if cw > mw or cw == 0:
            cw = mw
        elif di > 1:
            cw = (cw // di) * di + 1
        vs[v, V_CW] = cw


__all__ = [
    "V_NODE", "V_ADDR", "V_PROTO", "V_PORT", "V_SCHED", "V_FLAGS", "V_PERSIST", "V_D0", "V_D1", "V_T0", "V_T1",
    "V_LAST", "V_CW", "V_MW", "V_DI", "V_COLS", "D_VS", "D_ADDR", "D_PORT", "D_WEIGHT", "D_LASTW", "D_ACTIVE",
    "D_INACT", "D_SEQ", "D_COLS", "SCHEDULERS", "SCHED_RR", "SCHED_WRR", "SCHED_LC", "SCHED_WLC", "SCHED_SED",
    "SCHED_NQ", "SCHED_SH", "SCHED_DH", "SCHED_MH", "IP_VS_SVC_F_PERSISTENT", "IP_VS_SVC_F_SCHED1",
    "IP_VS_SVC_F_SCHED2", "IP_VS_SVC_F_SCHED3", "MH_TAB_SIZE", "SH_TAB_SIZE", "DH_TAB_SIZE", "IpvsTables",
    "build", "schedule", "hash_32", "hsiphash", "hsiphash_u32", "sh_hashkey", "dh_hashkey", "mh_hashkey",
    "fill_sh", "fill_dh", "fill_mh", "sched_flags", "ip_int",
]
