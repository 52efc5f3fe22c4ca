"""Per-packet flow hashes of Cilium's datapath, as numba kernels that also run as plain Python.

Sources (facts read, code written here from them):
- cilium/cilium bpf/lib/jhash.h: Bob Jenkins' lookup3 as in the Linux kernel (JHASH_INITVAL
  0xdeadbeef, __jhash_mix, __jhash_final, jhash over bytes read as little-endian words,
  jhash_3words = final(a+iv, b+iv, c+iv) with iv = initval + 0xdeadbeef + 12).
- cilium/cilium bpf/lib/hash.h __hash_from_tuple_v4: jhash_3words(saddr, dport << 16 | sport,
  nexthdr, hash_init4_seed); daddr deliberately left out; HASH_WORD32_LE/HASH_WORD16_LE make
  big-endian hosts hash what little-endian ones do (the raw network-order bytes read as LE).
- cilium/cilium bpf/lib/lb.h lb4_select_backend_id_maglev: the CT tuple has its ports swapped,
  so the packet's source port is passed as sport (0 when the service has session affinity) and
  the service port as dport (cilium/cilium#37353, Cilium >= 1.17; earlier releases hashed
  (client port << 16 | service port), see the report); index = hash % LB_MAGLEV_LUT_SIZE.
- cilium/cilium pkg/maglev (ToConfig) and pkg/datapath config: hash_init4_seed = SeedJhash0 =
  bytes 4..7 of the base64-decoded maglev.hashSeed, big-endian.

All arithmetic is on Python/numba integers masked to 32 bits, so each function gives the same
answer compiled (``f(...)``) and interpreted (``f.py_func(...)``). From other kernels pass int64
(or narrower) values: numba mixes uint64 with int64 constants in float64.
"""
from __future__ import annotations

import numpy as np
from numba import njit

JHASH_INITVAL = 0xDEADBEEF
M32 = 0xFFFFFFFF
IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP = 6, 17, 132
# SeedJhash0 of maglev.DEFAULT_SEED "JLfvgnHc2kaSUFaI" (decoded bytes 4..7, big-endian);
# tests check it against kslib.proxy.maglev.seeds()
DEFAULT_HASH_INIT4_SEED = 0x71DCDA46


@njit(cache=True)
def rol32(word, shift):
    """32-bit rotate left (jhash.h rol32)."""
    word &= M32
    shift &= 31
    return ((word << shift) | (word >> ((32 - shift) & 31))) & M32


@njit(cache=True)
def jhash_mix(a, b, c):
    """__jhash_mix: returns the mixed (a, b, c)."""
    a = (a - c) & M32
    a ^= rol32(c, 4)
    c = (c + b) & M32
    b = (b - a) & M32
    b ^= rol32(a, 6)
    a = (a + c) & M32
    c = (c - b) & M32
    c ^= rol32(b, 8)
    b = (b + a) & M32
    a = (a - c) & M32
    a ^= rol32(c, 16)
    c = (c + b) & M32
    b = (b - a) & M32
    b ^= rol32(a, 19)
    a = (a + c) & M32
    c = (c - b) & M32
    c ^= rol32(b, 4)
    b = (b + a) & M32
    return a, b, c


@njit(cache=True)
def jhash_final(a, b, c):
    """__jhash_final: returns the final (a, b, c); the hash is c."""
    c ^= b
    c = (c - rol32(b, 14)) & M32
    a ^= c
    a = (a - rol32(c, 11)) & M32
    b ^= a
    b = (b - rol32(a, 25)) & M32
    c ^= b
    c = (c - rol32(b, 16)) & M32
    a ^= c
    a = (a - rol32(c, 4)) & M32
    b ^= a
    b = (b - rol32(a, 14)) & M32
    c ^= b
    c = (c - rol32(b, 24)) & M32
    return a, b, c


@njit(cache=True)
def jhash_nwords(a, b, c, initval):
    """__jhash_nwords: add initval to each word, then the final mix."""
    a = (a + initval) & M32
    b = (b + initval) & M32
    c = (c + initval) & M32
    return jhash_final(a, b, c)[2]


@njit(cache=True)
def jhash_3words(a, b, c, initval):
    return jhash_nwords(a, b, c, (initval + JHASH_INITVAL + (3 << 2)) & M32)


@njit(cache=True)
def jhash_2words(a, b, initval):
    return jhash_nwords(a, b, 0, (initval + JHASH_INITVAL + (2 << 2)) & M32)


@njit(cache=True)
def jhash_1word(a, initval):
    return jhash_nwords(a, 0, 0, (initval + JHASH_INITVAL + (1 << 2)) & M32)


@njit(cache=True)
def jhash(key, length, initval):
    """jhash over ``length`` bytes of ``key`` (a uint8 array, or bytes when interpreted): 12-byte
    blocks as three little-endian words, the tail added byte by byte, final mix unless empty."""
    a = (JHASH_INITVAL + length + initval) & M32
    b = a
    c = a
    k = 0
    while length > 12:
        a = (a + (key[k] | (key[k + 1] << 8) | (key[k + 2] << 16) | (key[k + 3] << 24))) & M32
        b = (b + (key[k + 4] | (key[k + 5] << 8) | (key[k + 6] << 16) | (key[k + 7] << 24))) & M32
        c = (c + (key[k + 8] | (key[k + 9] << 8) | (key[k + 10] << 16) | (key[k + 11] << 24))) & M32
        a, b, c = jhash_mix(a, b, c)
        length -= 12
        k += 12
    if length == 0:
        return c
    # the switch's fall-through: byte t of the tail goes to word t // 4 at shift 8 * (t % 4)
    for t in range(length):
        v = int(key[k + t]) << (8 * (t % 4))
        if t < 4:
            a = (a + v) & M32
        elif t < 8:
            b = (b + v) & M32
        else:
            c = (c + v) & M32
    return jhash_final(a, b, c)[2]


def jhash_bytes(data: bytes, initval: int = 0) -> int:
    """jhash of a bytes object (compiled path)."""
    return jhash(np.frombuffer(bytes(data), dtype=np.uint8), len(data), initval)


@njit(cache=True)
def bswap16(x):
    x &= 0xFFFF
    return ((x >> 8) | (x << 8)) & 0xFFFF


@njit(cache=True)
def bswap32(x):
    x &= M32
    return ((x >> 24) | ((x >> 8) & 0xFF00) | ((x << 8) & 0xFF0000) | (x << 24)) & M32


@njit(cache=True)
def maglev_flow_hash(saddr, sport, dport, proto, seed):
    """What Cilium's lb4 Maglev lookup hashes for a new connection; the caller takes it mod M.

    saddr: the client's IPv4 address as a host-order int (int(IPv4Address("10.0.0.1")));
    sport: the client's source port, or 0 when the service has sessionAffinity: ClientIP;
    dport: the destination port the packet carries (the frontend's port: NodePort, LB port...);
    proto: IP protocol number (6 TCP, 17 UDP, 132 SCTP); seed: hash_init4_seed (SeedJhash0).
    The words are the network-order bytes read little-endian, as the BPF program reads them."""
    w_addr = bswap32(saddr)
    w_ports = ((bswap16(dport) << 16) | bswap16(sport)) & M32
    return jhash_3words(w_addr, w_ports, proto & 0xFF, seed)


def warmup() -> None:
    """Compile the kernels (numba caches them on disk)."""
    jhash_3words(1, 2, 3, 0)
    jhash_2words(1, 2, 0)
    jhash_1word(1, 0)
    jhash_bytes(b"Four score and seven years ago", 0)
    maglev_flow_hash(0x0A000001, 40000, 80, IPPROTO_TCP, DEFAULT_HASH_INIT4_SEED)


__all__ = ["DEFAULT_HASH_INIT4_SEED", "IPPROTO_SCTP", "IPPROTO_TCP", "IPPROTO_UDP", "JHASH_INITVAL",
           "bswap16", "bswap32", "jhash", "jhash_1word", "jhash_2words", "jhash_3words", "jhash_bytes",
           "jhash_final", "jhash_mix", "jhash_nwords", "maglev_flow_hash", "rol32", "warmup"]
