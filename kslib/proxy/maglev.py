"""Maglev consistent hashing, as the NSDI'16 paper defines it and as Cilium builds its tables.

Sources (facts read, code written here from them):
- Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load Balancer", NSDI'16, section 3.4
  (permutation = offset + j*skip mod M, round-robin population that may stop mid-round) and
  section 5.3 (M prime, M > 100*N).
- cilium/cilium pkg/maglev/maglev.go: offset/skip from murmur3-128 of the backend's hash string,
  seeded with the first 4 bytes of the base64 hash seed; backends sorted by that string; the
  weighted population (turn skipping, after envoyproxy/envoy#2982); the supported table sizes.
- cilium/cilium pkg/murmur3/murmur3.go: MurmurHash3_x64_128 (smhasher reference algorithm),
  little-endian 8-byte blocks, seed widened to 64 bits for both halves.

Everything is plain Python integers (no numba): tables are rebuilt only when backends change.
"""
from __future__ import annotations

import base64

# pkg/maglev: maglevSupportedTableSizes (primes, so every skip in 1..M-1 is coprime with M)
PRIMES = (251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071)
DEFAULT_TABLE_SIZE = 16381
DEFAULT_SEED = "JLfvgnHc2kaSUFaI"     # DefaultHashSeed: base64 of 12 random bytes

_M64 = (1 << 64) - 1
_C1 = 0x87C37B91114253D5
_C2 = 0x4CF5AD432745937F


# ---- configuration -------------------------------------------------------------------------------
def check_table_size(m: int) -> int:
    """``m`` if Cilium accepts it as maglev.tableSize (--bpf-lb-maglev-table-size), else ValueError.
    (The agent's own message reads "Invalid value for --bpf-lb-maglev-table-size: ...,
    supported values are: [...]"; this one names the Helm value.)"""
    if isinstance(m, bool) or not isinstance(m, int) or m not in PRIMES:
        raise ValueError(f"maglev.tableSize: Invalid value: {m!r}: must be one of "
                         f"{', '.join(str(p) for p in PRIMES)}")
    return m


def seeds(seed: str = DEFAULT_SEED) -> tuple[int, int, int]:
    """(seed_murmur, seed_jhash0, seed_jhash1) from a base64 maglev.hashSeed (pkg/maglev ToConfig):
    the decoded 12 bytes as three big-endian u32. seed_murmur seeds the table construction;
    seed_jhash0 is the IPv4 datapath hash seed (HASH_INIT4_SEED), seed_jhash1 the IPv6 one."""
    try:
        raw = base64.b64decode(seed, validate=True)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"maglev.hashSeed: cannot decode base64 Maglev hash seed {seed!r}") from exc
    if len(raw) != 12:
        raise ValueError(f"maglev.hashSeed: decoded hash seed is {len(raw)} bytes (not 12 bytes)")
    return tuple(int.from_bytes(raw[i:i + 4], "big") for i in (0, 4, 8))


# ---- MurmurHash3 x64 128 ---------------------------------------------------------------------------
def _rotl64(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M64


def _fmix64(k: int) -> int:
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & _M64
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & _M64
    return k ^ (k >> 33)


def _mix_k1(k1: int) -> int:
    return (_rotl64((k1 * _C1) & _M64, 31) * _C2) & _M64


def _mix_k2(k2: int) -> int:
    return (_rotl64((k2 * _C2) & _M64, 33) * _C1) & _M64


def murmur3_x64_128(data: bytes, seed: int = 0) -> tuple[int, int]:
    """MurmurHash3_x64_128 -> (h1, h2), each an unsigned 64-bit int. The usual 16-byte digest is
    h1 then h2, each little-endian (so "The quick brown fox jumps over the lazy dog", seed 0,
    gives h1 = 0xe34bbc7bbc071b6c, digest 6c1b07bc7bbc4be3...)."""
    if isinstance(data, str):
        data = data.encode()
    n = len(data)
    h1 = h2 = seed & 0xFFFFFFFF
    nblocks = n // 16
    for i in range(nblocks):
        k1 = int.from_bytes(data[16 * i:16 * i + 8], "little")
        k2 = int.from_bytes(data[16 * i + 8:16 * i + 16], "little")
        h1 ^= _mix_k1(k1)
        h1 = (_rotl64(h1, 27) + h2) & _M64
        h1 = (h1 * 5 + 0x52DCE729) & _M64
        h2 ^= _mix_k2(k2)
        h2 = (_rotl64(h2, 31) + h1) & _M64
        h2 = (h2 * 5 + 0x38495AB5) & _M64
    tail = data[16 * nblocks:]
    if len(tail) > 8:
        h2 ^= _mix_k2(int.from_bytes(tail[8:], "little"))
    if tail:
        h1 ^= _mix_k1(int.from_bytes(tail[:8], "little"))
    h1 ^= n
    h2 ^= n
    h1 = (h1 + h2) & _M64
    h2 = (h2 + h1) & _M64
    h1, h2 = _fmix64(h1), _fmix64(h2)
    h1 = (h1 + h2) & _M64
    h2 = (h2 + h1) & _M64
    return h1, h2


# ---- permutations and population -------------------------------------------------------------------
def offset_skip(name: str, m: int = DEFAULT_TABLE_SIZE, seed: str = DEFAULT_SEED) -> tuple[int, int]:
    """A backend's (offset, skip): murmur3-128 of its name seeded with seed_murmur;
    offset = h1 mod M, skip = h2 mod (M-1) + 1 (getOffsetAndSkip)."""
    h1, h2 = murmur3_x64_128(name.encode(), seeds(seed)[0])
    return h1 % m, h2 % (m - 1) + 1


def permutation(offset: int, skip: int, m: int) -> list[int]:
    """The backend's preference list: (offset + j*skip) mod M for j = 0..M-1."""
    return [(offset + j * skip) % m for j in range(m)]


def populate(perms: list[tuple[int, int]], m: int, weights: list[int] | None = None) -> list[int]:
    """The lookup table: entry c -> index (into ``perms``) of the backend owning it.

    Backends take turns in the given order; each claims the next free entry of its permutation;
    the fill stops as soon as all M entries are taken, which can be in the middle of a round
    (paper, Pseudocode 1). With ``weights`` (Cilium's computeLookupTable), a backend whose
    (turn number + 1) * weight is still below its counter passes its turn to the next one; the
    counter starts at weight/N and grows by the weight sum at each turn taken. Weights are only
    honoured when sum(weights) // N > 1, so all-equal weights give the unweighted table."""
    n_be = len(perms)
    if n_be == 0:
        return []
    if m < 1:
        raise ValueError("table size must be positive")
    nxt = [0] * n_be
    entry = [-1] * m
    use_w = False
    if weights is not None:
        if len(weights) != n_be:
            raise ValueError("weights must have one entry per backend")
        w_sum = sum(int(w) for w in weights)
        use_w = w_sum // n_be > 1
        counter = [float(w) / n_be for w in weights]     # Go float64, as weightCntr
    for n in range(m):
        i = n % n_be
        if use_w:
            for _ in range(n_be + 1):
                if (n + 1) * int(weights[i]) < int(counter[i]):
                    i = (i + 1) % n_be
                    continue
                counter[i] += w_sum
                break
            else:
                raise RuntimeError("no backend may take a turn (weights)")
        offset, skip = perms[i]
        c = (offset + nxt[i] * skip) % m
        while entry[c] >= 0:
            nxt[i] += 1
            c = (offset + nxt[i] * skip) % m
        entry[c] = i
        nxt[i] += 1
    return entry


def backend_hash_string(address: str, port: int, protocol: str = "TCP") -> str:
    """The name Cilium hashes and sorts a backend by (BackendInfo.setHashString):
    "[10.244.1.5:8080/TCP,State:active]", IPv6 "[[fd00::5]:8080/TCP,State:active]". The state is
    always written as active, so a backend keeps its place when it starts terminating."""
    host = f"[{address}]" if ":" in address else address
    return f"[{host}:{port}/{protocol},State:active]"


def table(names: list[str], m: int = DEFAULT_TABLE_SIZE, seed: str = DEFAULT_SEED,
          weights: list[int] | None = None) -> list[int]:
    """Cilium's Maglev lookup table for ``names``: M entries, each an index into ``names`` as
    given. Cilium fills in order of the names sorted bytewise (the same on every node), so the
    result does not depend on the order of ``names``; ``weights`` go with ``names``."""
    check_table_size(m)
    if len(set(names)) != len(names):
        raise ValueError("backend names must be unique")
    order = sorted(range(len(names)), key=lambda i: names[i].encode())
    perms = [offset_skip(names[i], m, seed) for i in order]
    w = None if weights is None else [weights[i] for i in order]
    return [order[k] for k in populate(perms, m, w)]


def slots_owned(entries: list[int]) -> dict[int, int]:
    """value -> how many table entries hold it, in order of first appearance."""
    out: dict[int, int] = {}
    for e in entries:
        out[e] = out.get(e, 0) + 1
    return out


__all__ = ["DEFAULT_SEED", "DEFAULT_TABLE_SIZE", "PRIMES", "backend_hash_string", "check_table_size",
           "murmur3_x64_128", "offset_skip", "permutation", "populate", "seeds", "slots_owned", "table"]
