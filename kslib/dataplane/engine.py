"""The packet engine: numba kernels that walk the compiled netfilter tables of every node.

``run_flow`` decides one packet's fate from the moment it leaves its sender until it is delivered,
rejected, dropped or leaves the cluster: at each node it looks the packet up in conntrack, runs the
hooks in kernel order (PREROUTING raw/mangle/nat, routing, FORWARD or INPUT, POSTROUTING), applies
NAT (the first packet of a connection walks the nat table; later packets and replies follow the
conntrack entry), and routes it to a local pod, another node or out of the cluster. A traced
``connect`` and a batch of millions (``run_batch``) run the same function; a trace only records
what it did.

Performance note: numba reference-counts (atomically) every array a compiled function receives,
about 6 ns per array and call, which forty table arrays turned into half the cost of a connection.
So the kernels receive one ``Tables`` structure (a numba StructRef) holding every array, and read
``t.rules[i, ...]`` through it: one reference per call. The tables are a few packed 2-D arrays
(columns in ``codes``) instead of many small ones.

Each hook runs its stages in priority order (``hooks[node, hook]``): base chains of iptables or
nftables, conntrack's NAT step, and IPVS (ip_vs_in at LOCAL_IN and LOCAL_OUT) on IPVS nodes. nft
verdict maps, sets, ipsets and the kernel's keyed tables (IPVS services, persistence templates and
connections; eBPF service and affinity maps) are lookups in one open-addressing hash table of
elements, so a lookup costs the same for ten Services or a hundred thousand. On eBPF nodes a pod's
or the host's ``connect()`` picks the backend before any packet exists (Cilium's socket LB), and
packets from outside meet the service map at the node's device (tc) before netfilter.

Randomness (``-m statistic``, ``numgen``, ``--random-fully``, random backends) comes from ``rng``, a
splitmix64 state seeded by the cluster, so a run can be repeated exactly.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit, types
from numba.experimental import structref

from . import codes as C
from .hashes import DEFAULT_HASH_INIT4_SEED, maglev_flow_hash
from .ipvs import D_ACTIVE, D_ADDR, D_INACT, D_PORT, D_WEIGHT, V_PERSIST
from .ipvs import schedule as ipvs_schedule

# lost = [net, mask] of the service CIDR: nothing outside the cluster answers for a ClusterIP
Network = namedtuple("Network", ["nodes", "pod_ip", "pods", "listen", "host", "lost"])
State = namedtuple("State", ["rng", "recent", "recent_clock"])
# every set element, nft map entry, ipset entry and kernel table entry: rows, expiry, hash slots, count
Elements = namedtuple("Elements", ["el", "el_exp", "el_slot", "el_meta"])
Ipvs = namedtuple("Ipvs", ["vs", "dests", "vtab"])
Lb = namedtuple("Lb", ["fe", "be", "slots", "maglev", "ranges"])
Conntrack = namedtuple("Conntrack", ["slot_o", "slot_r", "entries", "expires", "meta"])


@structref.register
class TablesType(types.StructRef):
    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(typ)) for name, typ in fields)


class Tables(structref.StructRefProxy):
    """Every array the kernels read or write for one loaded network, in one numba structure: the
    compiled program (rules, matches, chains, hooks, aux, sets), the network (nodes, pod_ip, pods,
    listen, host, lost), random and xt_recent state (rng, recent, recent_clock), the elements (el,
    el_exp, el_slot, el_meta), IPVS (vs, dests, vtab), Cilium's maps (fe, be, slots, maglev, ranges)
    and conntrack (slot_o, slot_r, ent, expires, meta). It shares the arrays, so writes either side
    are seen by the other; arrays replaced by bigger ones need a new Tables."""


TABLE_FIELDS = ("rules", "matches", "chains", "hooks", "aux", "sets", "nodes", "pod_ip", "pods", "listen", "host",
                "lost", "rng", "recent", "recent_clock", "el", "el_exp", "el_slot", "el_meta", "vs", "dests", "vtab",
                "fe", "be", "slots", "maglev", "ranges", "slot_o", "slot_r", "ent", "expires", "meta")
structref.define_proxy(Tables, TablesType, list(TABLE_FIELDS))


def tables(*arrays) -> Tables:
    """A Tables over ``arrays`` in TABLE_FIELDS order; each must be C-contiguous (another layout
    would be another numba type, and compile every kernel again)."""
    for name, a in zip(TABLE_FIELDS, arrays, strict=True):
        if not a.flags.c_contiguous:
            raise ValueError(f"engine table {name} must be C-contiguous")
    return Tables(*arrays)


MAXDEPTH = 64                              # jump nesting the walk allows
ST_SEEN_REPLY, ST_DNAT, ST_SNAT, ST_OPEN = 1, 2, 4, 8     # ST_OPEN: a held connection, not closed
HOP_LIMIT = 16
LOCAL_BIT, BROADCAST_BIT, MULTICAST_BIT, UNICAST_BIT = 1 << 2, 1 << 3, 1 << 5, 1 << 1   # xt_addrtype
FOREVER = np.inf
MAGLEV_SEED = DEFAULT_HASH_INIT4_SEED   # Cilium's default maglev.hashSeed


# ---- randomness --------------------------------------------------------------------------------------
@njit(cache=True)
def next_random(rng):
    """splitmix64: the next 64-bit value of the stream in rng[0]."""
    rng[0] += np.uint64(0x9E3779B97F4A7C15)
    z = rng[0]
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def random31(rng):
    """get_random_u32() & 0x7fffffff, as xt_statistic compares it."""
    return np.int64(next_random(rng) >> np.uint64(33))


@njit(cache=True)
def random32(rng):
    """get_random_u32()."""
    return np.int64(next_random(rng) >> np.uint64(32))


# ---- elements: one hash table for every set, map and keyed kernel table ------------------------------------
@njit(cache=True)
def key_hash(owner, k0, k1, k2, k3, salt, mask):
    """FNV-style hash of an owner (a node, a set) and four key numbers: conntrack's and the elements' slots."""
    h = np.uint64(owner * 1000003 + salt)
    for v in (k0, k1, k2, k3):
        h = (h ^ np.uint64(v)) * np.uint64(0x100000001B3)
        h ^= h >> np.uint64(29)
    return np.int64(h & np.uint64(mask))


@njit(cache=True)
def el_slot_of(t, s, k0, k1, k2, k3):
    """(slot, element) of the key; element -1 when absent (the slot is then where it would go)."""
    mask = t.el_slot.shape[0] - 1
    h = key_hash(s, k0, k1, k2, k3, 17, mask)
    while t.el_slot[h] >= 0:
        i = t.el_slot[h]
        if t.el[i, C.EL_SET] == s and t.el[i, C.EL_K0] == k0 and t.el[i, C.EL_K1] == k1 and t.el[i, C.EL_K2] == k2 \
                and t.el[i, C.EL_K3] == k3:
            return h, i
        h = (h + 1) & mask
    return h, -1


@njit(cache=True)
def el_find(t, s, k0, k1, k2, k3, now):
    """The live element with this key, or -1."""
    if s < 0:
        return -1
    _, i = el_slot_of(t, s, k0, k1, k2, k3)
    if i >= 0 and t.el_exp[i] > now:
        return i
    return -1


@njit(cache=True)
def el_put(t, s, k0, k1, k2, k3, va, vb, expire):
    """Add or refresh an element (an expired one with the same key is reused); -1 when full."""
    h, i = el_slot_of(t, s, k0, k1, k2, k3)
    if i < 0:
        i = t.el_meta[0]
        if i >= t.el.shape[0]:
            return -1
        t.el_meta[0] = i + 1
        t.el[i, C.EL_SET], t.el[i, C.EL_K0], t.el[i, C.EL_K1], t.el[i, C.EL_K2], t.el[i, C.EL_K3] = s, k0, k1, k2, k3
        t.el[i, C.EL_FLAG] = 0
        t.el_slot[h] = i
    t.el[i, C.EL_VA], t.el[i, C.EL_VB] = va, vb
    t.el_exp[i] = expire
    return i


@njit(cache=True)
def el_rehash(el, el_slot, el_meta):
    """Rebuild the hash slots after Python compacted or grew the elements."""
    el_slot[:] = -1
    mask = el_slot.shape[0] - 1
    for i in range(el_meta[0]):                # keys are unique: each takes the first free slot of its probe
        h = key_hash(el[i, C.EL_SET], el[i, C.EL_K0], el[i, C.EL_K1], el[i, C.EL_K2], el[i, C.EL_K3], 17, mask)
        while el_slot[h] >= 0:
            h = (h + 1) & mask
        el_slot[h] = i


@njit(cache=True)
def pk_field(pk, f):
    if f == C.F_SADDR:
        return pk[C.P_SRC]
    if f == C.F_DADDR:
        return pk[C.P_DST]
    if f == C.F_PROTO:
        return pk[C.P_PROTO]
    if f == C.F_SPORT:
        return pk[C.P_SPORT]
    if f == C.F_DPORT:
        return pk[C.P_DPORT]
    return 0


@njit(cache=True)
def set_lookup(t, s, spec, pk, now):
    """Look the packet up in set ``s`` with the key made of ``spec``'s fields: the element, or -1. A set
    with a network dimension is probed once per prefix length it holds, longest first (as ipset's
    hash:net types and nft interval sets find the covering prefix)."""
    k0 = pk_field(pk, spec & 7)
    k1 = pk_field(pk, (spec >> 3) & 7)
    k2 = pk_field(pk, (spec >> 6) & 7)
    k3 = pk_field(pk, (spec >> 9) & 7)
    pos = t.sets[s, C.S_NETPOS]
    if pos < 0:
        return el_find(t, s, k0, k1, k2, k3, now)
    for q in range(t.sets[s, C.S_PL0], t.sets[s, C.S_PL1]):
        m = t.aux[q]
        r = el_find(t, s, k0 & m if pos == 0 else k0, k1 & m if pos == 1 else k1,
                    k2 & m if pos == 2 else k2, k3 & m if pos == 3 else k3, now)
        if r >= 0:
            return r
    return -1


@njit(cache=True)
def set_update(t, s, spec, pk, now):
    """nft ``update @set { key }``: add the key, or refresh its timeout."""
    timeout = t.sets[s, C.S_TIMEOUT]
    expire = now + timeout / 1e6 if timeout > 0 else FOREVER
    return el_put(t, s, pk_field(pk, spec & 7), pk_field(pk, (spec >> 3) & 7),
                  pk_field(pk, (spec >> 6) & 7), pk_field(pk, (spec >> 9) & 7), 1, 0, expire)


# ---- addresses and routing ------------------------------------------------------------------------------
@njit(cache=True)
def addr_type(t, node, addr):
    """The xt_addrtype bit of ``addr`` seen from ``node``: LOCAL for its own addresses, 127/8 and the
    addresses bound on kube-ipvs0 in IPVS mode."""
    if addr == t.nodes[node, C.N_IP] or addr == t.nodes[node, C.N_GW] or (addr >> 24) == 127:
        return LOCAL_BIT
    if (addr & t.nodes[node, C.N_PMASK]) == t.nodes[node, C.N_PNET]:
        return UNICAST_BIT                   # one of this node's pods (kube-ipvs0 holds service addresses)
    if t.nodes[node, C.N_LOCALSET] >= 0 and el_find(t, t.nodes[node, C.N_LOCALSET], addr, 0, 0, 0,
                                                  0.0) >= 0:
        return LOCAL_BIT
    if addr == 0xFFFFFFFF or addr == 0:
        return BROADCAST_BIT
    if (addr >> 28) == 14:
        return MULTICAST_BIT
    return UNICAST_BIT


@njit(cache=True)
def route(t, node, addr):
    """The node's routing decision for ``addr``: (R_* kind, pod or node index)."""
    if addr_type(t, node, addr) == LOCAL_BIT:
        return C.R_LOCAL, node
    if (addr & t.nodes[node, C.N_PMASK]) == t.nodes[node, C.N_PNET]:
        i = np.searchsorted(t.pod_ip, addr)
        if i < t.pod_ip.shape[0] and t.pod_ip[i] == addr:
            return C.R_POD, i
        return C.R_NO_POD, -1
    for m in range(t.nodes.shape[0]):
        if m != node and (addr == t.nodes[m, C.N_IP] or (addr & t.nodes[m, C.N_PMASK]) == t.nodes[m, C.N_PNET]):
            return C.R_NODE, m
    return C.R_EXTERNAL, -1


@njit(cache=True)
def out_interface(kind):
    if kind == C.R_LOCAL:
        return C.IF_LO
    if kind == C.R_POD or kind == C.R_NO_POD:
        return C.IF_CNI0
    return C.IF_ETH0


@njit(cache=True)
def accepts(t, node, pod, proto, port):
    """Does a socket listen on proto/port in ``pod`` (or, for pod -1, in ``node``'s host network)?"""
    if pod >= 0:
        if t.pods[pod, C.POD_ANY]:
            return True
        for k in range(t.pods[pod, C.POD_L0], t.pods[pod, C.POD_L1]):
            if t.listen[k, 0] == proto and t.listen[k, 1] == port:
                return True
        return False
    for k in range(t.host.shape[0]):
        if t.host[k, 0] == node and t.host[k, 1] == proto and t.host[k, 2] == port:
            return True
    return False


# ---- tracing -----------------------------------------------------------------------------------------
@njit(cache=True)
def record(tr, trn, kind, node, hook, table, chain, rule, a, b, c):
    n = trn[0]
    if n < tr.shape[0]:
        tr[n, 0], tr[n, 1], tr[n, 2], tr[n, 3], tr[n, 4] = kind, node, hook, table, chain
        tr[n, 5], tr[n, 6], tr[n, 7], tr[n, 8] = rule, a, b, c
        trn[0] = n + 1


# ---- xt_recent -----------------------------------------------------------------------------------------
@njit(cache=True)
def recent_match(rc, clock, t, mode, seconds, reap, addr, now_us):
    """One ``-m recent`` evaluation on table ``t`` (net/netfilter/xt_recent.c recent_mt), uninverted.
    rc[t, k] = (address, last stamp, LRU sequence); a sequence of 0 marks a free slot."""
    slot = -1
    for k in range(rc.shape[1]):
        if rc[t, k, C.RC_SEQ] > 0 and rc[t, k, C.RC_IP] == addr:
            slot = k
            break
    if slot < 0:
        if mode != 0:                        # only --set creates an entry
            return False
        oldest = 0
        for k in range(rc.shape[1]):
            if rc[t, k, C.RC_SEQ] == 0:
                oldest = k
                break
            if rc[t, k, C.RC_SEQ] < rc[t, oldest, C.RC_SEQ]:
                oldest = k
        slot = oldest                        # a full table forgets its least recently set address
        rc[t, slot, C.RC_IP] = addr
    elif mode == 3:                          # --remove
        rc[t, slot, C.RC_SEQ] = 0
        return True
    elif mode != 0:                          # --rcheck / --update
        window = seconds * 1000000
        hit = seconds == 0 or rc[t, slot, C.RC_STAMP] >= now_us - window
        if reap:                             # recent_entry_reap: drop the LRU head if it is too old
            head = -1
            for k in range(rc.shape[1]):
                if rc[t, k, C.RC_SEQ] > 0 and (head < 0 or rc[t, k, C.RC_SEQ] < rc[t, head, C.RC_SEQ]):
                    head = k
            if head >= 0 and rc[t, head, C.RC_STAMP] < now_us - window:
                rc[t, head, C.RC_SEQ] = 0
        if not (mode == 2 and hit and rc[t, slot, C.RC_SEQ] > 0):
            return hit
    clock[t] += 1                            # --set, or --update on a hit: stamp, move to the LRU tail
    rc[t, slot, C.RC_STAMP] = now_us
    rc[t, slot, C.RC_SEQ] = clock[t]
    return True


# ---- conntrack ------------------------------------------------------------------------------------------
@njit(cache=True)
def ct_lookup(t, node, pk, now):
    """(entry, direction) for the packet's tuple on ``node``: direction 0 original, 1 reply; (-1, 0) if none."""
    mask = t.slot_o.shape[0] - 1
    h0 = key_hash(node, pk[C.P_SRC], pk[C.P_DST], pk[C.P_SPORT], pk[C.P_DPORT], pk[C.P_PROTO], mask)
    for d in range(2):
        index = t.slot_o if d == 0 else t.slot_r
        base = C.CT_O if d == 0 else C.CT_R
        h = h0
        while index[h] >= 0:
            e = index[h]
            if t.ent[e, C.CT_NODE] == node and t.ent[e, C.CT_PROTO] == pk[C.P_PROTO] and t.ent[e, base] == pk[C.P_SRC] \
                    and t.ent[e, base + 1] == pk[C.P_DST] and t.ent[e, base + 2] == pk[C.P_SPORT] \
                    and t.ent[e, base + 3] == pk[C.P_DPORT] and t.expires[e] > now:
                return e, d
            h = (h + 1) & mask
    return -1, 0


@njit(cache=True)
def ct_index(slot_o, slot_r, ent, e):
    mask = slot_o.shape[0] - 1
    for d in range(2):
        slots = slot_o if d == 0 else slot_r
        b = C.CT_O if d == 0 else C.CT_R
        h = key_hash(ent[e, C.CT_NODE], ent[e, b], ent[e, b + 1], ent[e, b + 2], ent[e, b + 3],
                       ent[e, C.CT_PROTO], mask)
        while slots[h] >= 0:
            h = (h + 1) & mask
        slots[h] = e


@njit(cache=True)
def ct_insert(t, node, o_src, o_dst, o_sport, o_dport, pk, expire_at):
    """Confirm a new entry: ``o_*`` is the tuple as the packet arrived, ``pk`` the packet after NAT;
    the reply tuple is the NATed packet turned around."""
    e = t.meta[0]
    if e >= t.ent.shape[0]:
        return -1
    t.meta[0] = e + 1
    t.ent[e, C.CT_NODE], t.ent[e, C.CT_PROTO] = node, pk[C.P_PROTO]
    t.ent[e, C.CT_O], t.ent[e, C.CT_O + 1], t.ent[e, C.CT_O + 2], t.ent[e, C.CT_O + 3] = o_src, o_dst, o_sport, o_dport
    t.ent[e, C.CT_R], t.ent[e, C.CT_R + 1] = pk[C.P_DST], pk[C.P_SRC]
    t.ent[e, C.CT_R + 2], t.ent[e, C.CT_R + 3] = pk[C.P_DPORT], pk[C.P_SPORT]
    t.ent[e, C.CT_STATUS] = (ST_DNAT if pk[C.P_CTSTATE] & C.CT_DNAT else 0) | \
        (ST_SNAT if pk[C.P_CTSTATE] & C.CT_SNAT else 0)
    t.expires[e] = expire_at
    ct_index(t.slot_o, t.slot_r, t.ent, e)
    return e


@njit(cache=True)
def ct_rehash(slot_o, slot_r, ent, meta):
    """Rebuild the hash slots after Python compacted or grew the entries."""
    slot_o[:] = -1
    slot_r[:] = -1
    for e in range(meta[0]):
        ct_index(slot_o, slot_r, ent, e)


# ---- eBPF service load balancing (Cilium's kube-proxy replacement) -----------------------------------------
@njit(cache=True)
def unique_sport(t, node, pk, now):
    """nf_nat_l4proto_unique_tuple, when the source NAT is set up: the source port stays unless the
    reply tuple it makes is already another connection's, then the next free one."""
    probe = np.zeros(C.P_LEN, np.int64)
    probe[C.P_SRC], probe[C.P_DST], probe[C.P_PROTO] = pk[C.P_DST], pk[C.P_SRC], pk[C.P_PROTO]
    probe[C.P_SPORT] = pk[C.P_DPORT]
    for attempt in range(64512):
        probe[C.P_DPORT] = pk[C.P_SPORT]
        if ct_lookup(t, node, probe, now)[0] < 0:
            return
        pk[C.P_SPORT] = 1024 + (pk[C.P_SPORT] - 1024 + 1) % 64512


@njit(cache=True)
def lb_frontend(t, node, addr, proto, port, socket):
    """The frontend (service map entry) for addr:port on ``node``, or -1. The socket layer prefers a
    two-scope service's internal (/i) entry; tc sees only the external one. A node address that
    matches no frontend is tried as the NodePort wildcard 0.0.0.0:port (bpf_sock.c
    sock4_wildcard_lookup: any node's address from the socket layer, this node's at tc)."""
    s = t.nodes[node, C.N_SVCSET]
    for wild in range(2):
        a = addr
        if wild == 1:
            known = addr == t.nodes[node, C.N_IP]
            if socket:
                for m in range(t.nodes.shape[0]):
                    known = known or addr == t.nodes[m, C.N_IP]
            if not known:
                return -1
            a = 0
        if socket:
            i = el_find(t, s, a, proto, port, C.SCOPE_INT, 0.0)
            if i >= 0:
                return t.el[i, C.EL_VA]
        i = el_find(t, s, a, proto, port, C.SCOPE_EXT, 0.0)
        if i >= 0:
            return t.el[i, C.EL_VA]
    return -1


@njit(cache=True)
def lb_select(t, node, f, pk, now, use_maglev):
    """The backend row for a new connection to frontend ``f``: the client's affinity entry while it
    lives and its backend still belongs to the service (lb4_affinity_backend_id with
    cilium_lb_affinity_match), else Maglev's lookup table for traffic from outside, else a random slot
    (lb4_select_backend_id_random: prandom % count + 1). -1 when the service has no backend."""
    count = t.fe[f, C.FE_COUNT]
    if count == 0:
        return -1
    timeout = t.fe[f, C.FE_AFFINITY]
    aff = t.nodes[node, C.N_AFFSET]
    if timeout > 0:
        i = el_find(t, aff, pk[C.P_SRC], t.fe[f, C.FE_REVNAT], 0, 0, now)
        if i >= 0:
            b = t.el[i, C.EL_VA]
            for k in range(count):
                if t.slots[t.fe[f, C.FE_S0] + k] == b:
                    t.el_exp[i] = now + timeout
                    return b
    if use_maglev and t.fe[f, C.FE_MAGLEV] >= 0:
        sport = 0 if timeout > 0 else pk[C.P_SPORT]      # with affinity the source port is left out
        h = maglev_flow_hash(pk[C.P_SRC], sport, pk[C.P_DPORT], pk[C.P_PROTO], MAGLEV_SEED)
        b = t.maglev[t.fe[f, C.FE_MAGLEV] + h % t.fe[f, C.FE_M]]
    else:
        b = t.slots[t.fe[f, C.FE_S0] + random32(t.rng) % count]
    if timeout > 0:
        el_put(t, aff, pk[C.P_SRC], t.fe[f, C.FE_REVNAT], 0, 0, b, 0, now + timeout)
    return b


@njit(cache=True)
def in_ranges(t, r0, r1, addr):
    for q in range(r0, r1):
        if (addr & t.ranges[q, 1]) == t.ranges[q, 0]:
            return True
    return False


# ---- the flow ---------------------------------------------------------------------------------------------
@njit(cache=True)
def run_flow(t, node, kind, pk, now, commit, ttl, reply, hold, stack, tr, trn, out):
    """Carry one packet from ``node`` (entering as ``kind``) to its fate.

    ``out`` receives [outcome, node, pod (-1: the host or outside), dst, dport, src, sport, reject type,
    the service address:port a socket-LB connect() was made to (0 if none)]. ``commit`` confirms
    conntrack entries for new connections (lifetime ``ttl``) and records IPVS connections one by one;
    ``reply`` marks the answer of a connection, which needs no listening socket at its destination.
    ``hold`` > 0 (a batch only) names a group of long-lived connections: IPVS counts them active
    until Python closes the group.
    ``stack`` (MAXDEPTH x 2) is the caller's room for the jump stack, so a batch allocates it once.
    ``trn[1]`` counts the rules visited; ``tr`` receives trace rows when it has room."""
    tracing = tr.shape[0] > 0
    now_us = np.int64(now * 1e6)
    out[8], out[9] = 0, 0
    for hop in range(HOP_LIMIT):
        mode = t.nodes[node, C.N_MODE]
        if hop == 0 and not reply and kind != C.FROM_WIRE and mode == C.MODE_EBPF:
            # Cilium's cgroup connect4 hook: the socket is pointed at a backend before any packet exists
            f = lb_frontend(t, node, pk[C.P_DST], pk[C.P_PROTO], pk[C.P_DPORT],
                            True)
            if f >= 0:
                b = lb_select(t, node, f, pk, now, False)
                if tracing:
                    record(tr, trn, C.E_SOCK_LB, node, -1, -1, -1, f, b, pk[C.P_DST], pk[C.P_DPORT])
                if b < 0:
                    out[0], out[1], out[2], out[7] = C.O_REJECTED, node, -1, 0
                    return
                out[8], out[9] = pk[C.P_DST], pk[C.P_DPORT]
                pk[C.P_DST], pk[C.P_DPORT], pk[C.P_VIA] = t.be[b, C.B_ADDR], t.be[b, C.B_PORT], C.VIA_SOCK
                if kind == C.LOCAL_OUT:
                    # tcp_v4_pre_connect runs the connect4 hook before tcp_v4_connect routes the socket:
                    # a host socket takes the source address of the route to the backend (the bridge's
                    # towards a pod on this node), as network.source_address does for a direct connect
                    rk0, _ = route(t, node, pk[C.P_DST])
                    if rk0 == C.R_POD or rk0 == C.R_NO_POD:
                        pk[C.P_SRC] = t.nodes[node, C.N_GW]
        o_src, o_dst, o_sport, o_dport = pk[C.P_SRC], pk[C.P_DST], pk[C.P_SPORT], pk[C.P_DPORT]
        e, d = ct_lookup(t, node, pk, now)
        pk[C.P_MARK] = 0                     # skb->mark is local to a host
        if e < 0:
            pk[C.P_CTSTATE] = C.CT_NEW
            if tracing:
                record(tr, trn, C.E_CT_NEW, node, -1, -1, -1, -1, 0, 0, 0)
        else:
            if d == 1:
                t.ent[e, C.CT_STATUS] |= ST_SEEN_REPLY
            st = C.CT_ESTABLISHED if (d == 1 or (t.ent[e, C.CT_STATUS] & ST_SEEN_REPLY)) else C.CT_NEW
            if t.ent[e, C.CT_STATUS] & ST_DNAT:
                st |= C.CT_DNAT
            if t.ent[e, C.CT_STATUS] & ST_SNAT:
                st |= C.CT_SNAT
            pk[C.P_CTSTATE] = st
            if tracing:
                record(tr, trn, C.E_CT_FOUND, node, -1, -1, -1, e, d, 0, 0)
        v = C.V_ACCEPT
        if kind == C.FROM_WIRE and mode == C.MODE_EBPF and e < 0:
            if pk[C.P_DSR_ADDR] != 0:
                # a DSR packet reaches its backend's node: the service address it carries becomes the
                # entry's original destination, so the reply leaves with it as its source
                o_dst, o_dport = pk[C.P_DSR_ADDR], pk[C.P_DSR_PORT]
                pk[C.P_DSR_ADDR], pk[C.P_DSR_PORT] = 0, 0
                pk[C.P_CTSTATE] |= C.CT_DNAT
            else:
                # bpf_host at the device's tc ingress: NodePort, LoadBalancer and external IPs
                f = lb_frontend(t, node, pk[C.P_DST], pk[C.P_PROTO],
                                pk[C.P_DPORT], False)
                if f >= 0 and t.fe[f, C.FE_KIND] == C.KIND_CLUSTERIP:
                    f = -1                   # ClusterIPs are not reachable from outside (non-routable)
                if f >= 0:
                    # nodeport_lb4 (bpf/lib/nodeport.h): a source outside loadBalancerSourceRanges is
                    # dropped (DROP_NOT_IN_SRC_RANGE) before any backend is chosen; a frontend with no
                    # selectable backend (count 0, e.g. eTP=Local on a node without local ones) answers
                    # ICMP port unreachable (lb4_local DROP_NO_SERVICE -> tail_no_service_ipv4, with
                    # --service-no-backend-response=reject, the default since Cilium 1.15, PR 28157)
                    b = -2
                    if t.fe[f, C.FE_SR1] == t.fe[f, C.FE_SR0] or in_ranges(t, t.fe[f, C.FE_SR0], t.fe[f, C.FE_SR1],
                                                                       pk[C.P_SRC]):
                        b = lb_select(t, node, f, pk,
                                      now, True)
                    if tracing:
                        record(tr, trn, C.E_TC_LB, node, -1, -1, -1, f, b, pk[C.P_DST], pk[C.P_DPORT])
                    if b == -2:
                        v = C.V_DROP
                    elif b < 0:
                        pk[C.P_REJECT_WITH] = 0
                        v = C.V_REJECT
                    else:
                        vip, vport = pk[C.P_DST], pk[C.P_DPORT]
                        pk[C.P_DST], pk[C.P_DPORT] = t.be[b, C.B_ADDR], t.be[b, C.B_PORT]
                        pk[C.P_CTSTATE] |= C.CT_DNAT
                        pk[C.P_VIA] = C.VIA_TC
                        if t.be[b, C.B_NODE] != node:
                            if t.fe[f, C.FE_DSR] != 0:
                                pk[C.P_DSR_ADDR], pk[C.P_DSR_PORT] = vip, vport
                            else:                # SNAT to the node's address, so the reply comes back here
                                pk[C.P_SRC] = t.nodes[node, C.N_IP]
                                pk[C.P_CTSTATE] |= C.CT_SNAT
                                if commit:                   # a batch keeps no entries to clash with
                                    unique_sport(t, node, pk, now)
        rk, target = route(t, node, pk[C.P_DST])
        if kind == C.LOCAL_OUT:
            pk[C.P_IN], pk[C.P_OUT], hook = 0, out_interface(rk), C.OUTPUT
        else:
            pk[C.P_IN], pk[C.P_OUT], hook = (C.IF_CNI0 if kind == C.FROM_POD else C.IF_ETH0), 0, C.PRE
        if v != C.V_ACCEPT:
            hook = -1
        while hook >= 0:
            ipvs_sent = False
            nat_done = False
            # ---- every stage of this hook, in priority order
            for k in range(C.STAGES):
                stage = t.hooks[node, hook, k]
                if stage == C.STAGE_END or v != C.V_ACCEPT or ipvs_sent:
                    break
                if stage == C.STAGE_NAT:
                    if e >= 0 and not nat_done:
                        nat_done = True
                        # a known connection: its entry's NAT (nf_nat_packet), the destination at
                        # PREROUTING/OUTPUT, the source at POSTROUTING/INPUT
                        base = C.CT_R if d == 0 else C.CT_O
                        dst_side = hook == C.PRE or hook == C.OUTPUT
                        f_addr, f_port = (C.P_DST, C.P_DPORT) if dst_side else (C.P_SRC, C.P_SPORT)
                        want_addr = t.ent[e, base] if dst_side else t.ent[e, base + 1]
                        want_port = t.ent[e, base + 2] if dst_side else t.ent[e, base + 3]
                        changed = pk[f_addr] != want_addr or pk[f_port] != want_port
                        pk[f_addr], pk[f_port] = want_addr, want_port
                        if changed and tracing:
                            record(tr, trn, C.E_CT_NAT, node, hook, -1, -1, e, pk[C.P_SRC], pk[C.P_DST],
                                   pk[C.P_DPORT] * 65536 + pk[C.P_SPORT])
                    continue
                if stage == C.STAGE_IPVS:
                    if e >= 0 or pk[C.P_VIA] == C.VIA_IPVS:
                        continue
                    # ip_vs_in: is this a virtual service? (kube-ipvs0 made its address local)
                    hit = el_find(t, t.nodes[node, C.N_SVCSET], pk[C.P_DST], pk[C.P_PROTO],
                                  pk[C.P_DPORT], 0, now)
                    if hit < 0:
                        continue
                    sv = t.el[hit, C.EL_VA]
                    dd = -1
                    tpl = -1
                    persist = t.vs[sv, V_PERSIST]
                    if persist > 0:
                        # ip_vs_sched_persist: the client's template keeps its real server while that
                        # is usable (expire_quiescent_template=1 drops a weight-0 one). A template lives
                        # while its timer runs or while it controls an established connection (EL_VB
                        # counts those: n_control, which ip_vs_conn_expire will not expire)
                        _, tpl = el_slot_of(t, t.nodes[node, C.N_AFFSET], pk[C.P_SRC], sv, 0, 0)
                        if tpl >= 0 and t.el_exp[tpl] <= now and t.el[tpl, C.EL_VB] == 0:
                            tpl = -1
                        if tpl >= 0 and t.dests[t.el[tpl, C.EL_VA], D_WEIGHT] > 0:
                            dd = t.el[tpl, C.EL_VA]
                    if dd < 0:
                        dd = ipvs_schedule(t.vs, t.dests, t.vtab, sv, pk[C.P_SRC], pk[C.P_SPORT], pk[C.P_DST])
                    if dd < 0:                   # ip_vs_leave: no destination, ICMP port unreachable
                        if tracing:
                            record(tr, trn, C.E_IPVS_NONE, node, hook, -1, -1, sv, 0, 0, 0)
                        pk[C.P_REJECT_WITH] = 0
                        v = C.V_REJECT
                        break
                    # a new connection counts as inactive until established; kslib's exchange ends in
                    # TIME_WAIT, inactive again, until the entry expires. A held batch's connections
                    # are established streams: active until the batch is closed.
                    life = 300.0 if pk[C.P_PROTO] == 17 else 120.0   # UDP timeout; TCP TIME_WAIT
                    if persist > 0:
                        # the template's timer runs `persist` s from its last use; when it fires while the
                        # template still controls a connection (n_control), ip_vs_conn_expire re-arms it
                        # for 60 s at a time (ip_vs_conn.c, expire_later), so it outlives that connection
                        until = now + persist
                        if now + life >= until:
                            until += 60.0 * (np.floor((now + life - until) / 60.0) + 1.0)
                        held = 0
                        if tpl >= 0 and t.el[tpl, C.EL_VA] == dd:
                            held = t.el[tpl, C.EL_VB]
                            if t.el_exp[tpl] > until:
                                until = t.el_exp[tpl]      # an earlier connection still holds it longer
                        if hold > 0 and not commit:
                            held += 1                      # a held batch's stream (see close_group)
                        el_put(t, t.nodes[node, C.N_AFFSET], pk[C.P_SRC], sv, 0, 0, dd, held, until)
                    if commit:
                        t.dests[dd, D_INACT] += 1
                        i = el_put(t, t.nodes[node, C.N_CONNSET], pk[C.P_SRC],
                                   pk[C.P_SPORT], pk[C.P_DST], pk[C.P_DPORT] * 256 + pk[C.P_PROTO], dd, 1, now + life)
                        flag = 1
                    else:                        # a batch: one element counts its connections per real server
                        if hold > 0:
                            t.dests[dd, D_ACTIVE] += 1
                            k0, k2, until, flag = -2, hold, FOREVER, 2
                        else:
                            t.dests[dd, D_INACT] += 1
                            k0, k2, until, flag = -1, np.int64((now + life) * 1e6), now + life, 1
                        i = el_find(t, t.nodes[node, C.N_CONNSET], k0, dd, k2, 0, now)
                        if i >= 0:
                            t.el[i, C.EL_VB] += 1
                        else:
                            i = el_put(t, t.nodes[node, C.N_CONNSET], k0, dd, k2, 0, dd, 1, until)
                    if i >= 0:
                        t.el[i, C.EL_FLAG] = flag
                    if tracing:
                        record(tr, trn, C.E_IPVS, node, hook, -1, -1, sv, dd, t.dests[dd, D_ADDR], t.dests[dd, D_PORT])
                    pk[C.P_DST], pk[C.P_DPORT] = t.dests[dd, D_ADDR], t.dests[dd, D_PORT]
                    pk[C.P_CTSTATE] |= C.CT_DNAT
                    pk[C.P_VIA] = C.VIA_IPVS
                    ipvs_sent = True
                    break
                chain = stage
                if t.chains[chain, C.CH_NAT] != 0 and e >= 0:
                    continue                     # the nat chains see a connection's first packet only
                # ---- walk one base chain: rules in order, jumps on a stack
                sp = 0
                i = t.chains[chain, C.CH_START]
                while True:
                    if i >= t.chains[chain, C.CH_END]:
                        if sp == 0:
                            pol = t.chains[chain, C.CH_POLICY]
                            if tracing:
                                record(tr, trn, C.E_POLICY, node, hook, -1, chain, -1, pol, 0, 0)
                            v = C.V_DROP if pol == C.V_DROP else C.V_ACCEPT
                            break
                        sp -= 1
                        chain, i = stack[sp, 0], stack[sp, 1]
                        continue
                    trn[1] += 1
                    # the IP header part first (ip_packet_match), then each -m match in order
                    ok = True
                    if t.rules[i, C.R_SMASK] != 0 or t.rules[i, C.R_SINV] != 0:
                        ok = ((pk[C.P_SRC] & t.rules[i, C.R_SMASK]) == t.rules[i, C.R_SRC]) != (t.rules[i, C.R_SINV] != 0)
                    if ok and (t.rules[i, C.R_DMASK] != 0 or t.rules[i, C.R_DINV] != 0):
                        ok = ((pk[C.P_DST] & t.rules[i, C.R_DMASK]) == t.rules[i, C.R_DST]) != (t.rules[i, C.R_DINV] != 0)
                    if ok and t.rules[i, C.R_PROTO] >= 0:
                        ok = (pk[C.P_PROTO] == t.rules[i, C.R_PROTO]) != (t.rules[i, C.R_PINV] != 0)
                    if ok and t.rules[i, C.R_IN] >= 0:
                        ok = (pk[C.P_IN] & t.rules[i, C.R_IN]) != 0
                    if ok and t.rules[i, C.R_OUT] >= 0:
                        ok = (pk[C.P_OUT] & t.rules[i, C.R_OUT]) != 0
                    j = t.rules[i, C.R_M0]
                    while ok and j < t.rules[i, C.R_M1]:
                        op, a = t.matches[j, C.M_OP], t.matches[j, C.M_A]
                        if op == C.M_DPORT:
                            hit = a <= pk[C.P_DPORT] <= t.matches[j, C.M_B]
                        elif op == C.M_SPORT:
                            hit = a <= pk[C.P_SPORT] <= t.matches[j, C.M_B]
                        elif op == C.M_SET:
                            hit = set_lookup(t, a, t.matches[j, C.M_B], pk, now) >= 0
                        elif op == C.M_CIDRS:
                            x = pk[C.P_DST] if t.matches[j, C.M_C] else pk[C.P_SRC]
                            hit = False
                            for q in range(a, t.matches[j, C.M_B], 2):
                                if (x & t.aux[q + 1]) == t.aux[q]:
                                    hit = True
                                    break
                        elif op == C.M_PORTS:
                            hit = False
                            for q in range(a, t.matches[j, C.M_B], 2):
                                if (t.matches[j, C.M_C] != 1 and t.aux[q] <= pk[C.P_DPORT] <= t.aux[q + 1]) or \
                                        (t.matches[j, C.M_C] != 0 and t.aux[q] <= pk[C.P_SPORT] <= t.aux[q + 1]):
                                    hit = True
                                    break
                        elif op == C.M_SRCTYPE:
                            hit = (addr_type(t, node, pk[C.P_SRC]) & a) != 0
                        elif op == C.M_DSTTYPE:
                            hit = (addr_type(t, node, pk[C.P_DST]) & a) != 0
                        elif op == C.M_MARK:
                            hit = (pk[C.P_MARK] & t.matches[j, C.M_B]) == a
                        elif op == C.M_CTSTATE:
                            hit = (pk[C.P_CTSTATE] & a) != 0
                        elif op == C.M_RANDOM:
                            hit = random31(t.rng) < a
                        elif op == C.M_NTH:          # xt_statistic nth: a shared count wrapping at every-1
                            t.matches[j, C.M_COUNT] = 0 if t.matches[j, C.M_COUNT] == a else t.matches[j, C.M_COUNT] + 1
                            hit = t.matches[j, C.M_COUNT] == 0
                        elif op == C.M_RECENT:
                            hit = recent_match(t.recent, t.recent_clock, t.matches[j, C.M_B], a, t.matches[j, C.M_C], t.matches[j, C.M_D] != 0,
                                               pk[C.P_DST] if t.matches[j, C.M_E] else pk[C.P_SRC], now_us)
                        else:
                            hit = False
                        ok = hit != (t.matches[j, C.M_INV] != 0)
                        j += 1
                    if not ok:
                        i += 1
                        continue
                    t.rules[i, C.R_PKTS] += 1
                    tgt = t.rules[i, C.R_TGT]
                    if tgt == C.T_VMAP or tgt == C.T_NUMGEN:
                        # a verdict map: one hashed lookup (or numgen's random key), then its verdict
                        if tgt == C.T_VMAP:
                            hit = set_lookup(t, t.rules[i, C.R_TA], t.rules[i, C.R_TB], pk,
                                             now)
                            vv, vc = (t.el[hit, C.EL_VA], t.el[hit, C.EL_VB]) if hit >= 0 else (C.V_CONTINUE, -1)
                        else:                    # nft_numgen: reciprocal_scale(get_random_u32(), mod)
                            r = (random32(t.rng) * t.rules[i, C.R_TA]) >> 32
                            vv, vc = t.aux[t.rules[i, C.R_TB] + 2 * r], t.aux[t.rules[i, C.R_TB] + 2 * r + 1]
                            hit = r
                        if tracing:
                            record(tr, trn, C.E_VMAP, node, hook, -1, chain, i, vv, vc, hit)
                        if vv == C.V_CONTINUE:
                            i += 1
                            continue
                        tgt = (C.T_JUMP if vv == C.V_JUMP else C.T_GOTO if vv == C.V_GOTO else C.T_ACCEPT
                             if vv == C.V_ACCEPT else C.T_DROP if vv == C.V_DROP else C.T_RETURN if vv == C.V_RETURN
                             else C.T_REJECT)
                        target_chain = vc
                    else:
                        target_chain = t.rules[i, C.R_TA]
                        if tgt != C.T_DNAT and tgt != C.T_SNAT and tgt != C.T_MASQ:   # NAT records what it did below
                            if tracing:
                                record(tr, trn, C.E_RULE, node, hook, -1, chain, i, tgt, 0, 0)
                    if tgt == C.T_JUMP:
                        if sp == stack.shape[0]:
                            v = C.V_DROP
                            break
                        stack[sp, 0], stack[sp, 1] = chain, i + 1
                        sp += 1
                        chain = target_chain
                        i = t.chains[chain, C.CH_START]
                    elif tgt == C.T_GOTO:
                        chain = target_chain
                        i = t.chains[chain, C.CH_START]
                    elif tgt == C.T_RETURN:
                        i = t.chains[chain, C.CH_END]
                    elif tgt == C.T_ACCEPT:
                        break
                    elif tgt == C.T_DROP:
                        v = C.V_DROP
                        break
                    elif tgt == C.T_REJECT:
                        pk[C.P_REJECT_WITH] = t.rules[i, C.R_TA] if t.rules[i, C.R_TGT] == C.T_REJECT else 0
                        v = C.V_REJECT
                        break
                    elif tgt == C.T_DNAT:
                        pk[C.P_DST] = t.rules[i, C.R_TA]
                        if t.rules[i, C.R_TB] != 0:
                            pk[C.P_DPORT] = t.rules[i, C.R_TB]
                        pk[C.P_CTSTATE] |= C.CT_DNAT
                        if tracing:
                            record(tr, trn, C.E_DNAT, node, hook, -1, chain, i, pk[C.P_DST], pk[C.P_DPORT], 0)
                        break
                    elif tgt == C.T_SNAT or tgt == C.T_MASQ:
                        if tgt == C.T_SNAT:
                            pk[C.P_SRC] = t.rules[i, C.R_TA]
                            if t.rules[i, C.R_TB] != 0:
                                pk[C.P_SPORT] = t.rules[i, C.R_TB]
                        else:                # MASQUERADE: the address of the outgoing interface
                            # (lo's 127.0.0.1 is host scope, so the node's address is chosen there)
                            if pk[C.P_OUT] == C.IF_CNI0:
                                pk[C.P_SRC] = t.nodes[node, C.N_GW]
                            else:
                                pk[C.P_SRC] = t.nodes[node, C.N_IP]
                            if t.rules[i, C.R_TC] != 0:   # --random-fully: a random source port
                                pk[C.P_SPORT] = 1024 + random31(t.rng) % (65536 - 1024)
                        pk[C.P_CTSTATE] |= C.CT_SNAT
                        if commit:                   # a batch keeps no entries to clash with
                            unique_sport(t, node, pk, now)
                        if tracing:
                            record(tr, trn, C.E_SNAT, node, hook, -1, chain, i, pk[C.P_SRC], pk[C.P_SPORT], 0)
                        break
                    elif tgt == C.T_MARK:
                        pk[C.P_MARK] = ((pk[C.P_MARK] & ~t.rules[i, C.R_TB]) ^ t.rules[i, C.R_TA]) & 0xFFFFFFFF
                        i += 1
                    elif tgt == C.T_UPDATE:
                        set_update(t, t.rules[i, C.R_TA], t.rules[i, C.R_TB], pk, now)
                        i += 1
                    else:                    # LOG, or no target: count and go on
                        i += 1
            if v != C.V_ACCEPT:
                break
            # ---- the next hook
            if ipvs_sent:
                # ip_vs_nat_xmit: the real server's route; a remote one is sent through LOCAL_OUT again
                rk, target = route(t, node, pk[C.P_DST])
                if tracing:
                    record(tr, trn, C.E_ROUTE, node, -1, -1, -1, -1, rk, target, pk[C.P_DST])
                if rk == C.R_LOCAL:
                    hook = -1
                else:
                    pk[C.P_IN], pk[C.P_OUT], hook = 0, out_interface(rk), C.OUTPUT
            elif hook == C.PRE or hook == C.OUTPUT:
                rk, target = route(t, node, pk[C.P_DST])   # (re)route after DNAT
                pk[C.P_OUT] = out_interface(rk)
                if tracing:
                    record(tr, trn, C.E_ROUTE, node, -1, -1, -1, -1, rk, target, pk[C.P_DST])
                hook = C.POST if hook == C.OUTPUT else (C.INPUT if rk == C.R_LOCAL else C.FORWARD)
            elif hook == C.FORWARD:
                hook = C.POST
            elif hook == C.POST and kind == C.LOCAL_OUT and rk == C.R_LOCAL:
                pk[C.P_IN], hook = C.IF_LO, C.INPUT
            else:
                hook = -1
        out[1], out[2], out[3], out[4] = node, -1, pk[C.P_DST], pk[C.P_DPORT]
        out[5], out[6], out[7] = pk[C.P_SRC], pk[C.P_SPORT], pk[C.P_REJECT_WITH]
        if v == C.V_DROP:
            if tracing:
                record(tr, trn, C.E_DROP, node, -1, -1, -1, -1, 0, 0, 0)
            out[0] = C.O_DROPPED
            return
        if v == C.V_REJECT:
            if tracing:
                record(tr, trn, C.E_REJECT, node, -1, -1, -1, -1, pk[C.P_REJECT_WITH], 0, 0)
            out[0] = C.O_REJECTED
            return
        if e < 0 and commit:
            ne = ct_insert(t, node, o_src, o_dst, o_sport, o_dport, pk, now + ttl)
            if tracing:
                record(tr, trn, C.E_CONFIRM, node, -1, -1, -1, ne, 0, 0, 0)
        if rk == C.R_LOCAL or rk == C.R_POD:
            pod = target if rk == C.R_POD else -1
            out[2] = pod
            out[0] = C.O_DELIVERED if reply or accepts(t, node, pod, pk[C.P_PROTO],
                                                       pk[C.P_DPORT]) else C.O_REJECTED
            if tracing:
                record(tr, trn, C.E_DELIVER if out[0] == C.O_DELIVERED else C.E_REFUSED, node, -1, -1, -1, -1,
                       pod, pk[C.P_DST], pk[C.P_DPORT])
            return
        if rk == C.R_NO_POD:                 # nothing answers ARP on the bridge
            if tracing:
                record(tr, trn, C.E_DROP, node, -1, -1, -1, -1, 1, pk[C.P_DST], 0)
            out[0] = C.O_DROPPED
            return
        if rk == C.R_EXTERNAL:
            if (pk[C.P_DST] & t.lost[1]) == t.lost[0]:      # towards a ClusterIP no rule claimed: lost
                if tracing:
                    record(tr, trn, C.E_DROP, node, -1, -1, -1, -1, 2, pk[C.P_DST], pk[C.P_DPORT])
                out[0] = C.O_DROPPED
                return
            if tracing:
                record(tr, trn, C.E_LEAVE, node, -1, -1, -1, -1, 0, pk[C.P_DST], pk[C.P_DPORT])
            out[0] = C.O_LEFT
            return
        if tracing:
            record(tr, trn, C.E_FORWARD, node, -1, -1, -1, -1, target, pk[C.P_DST], 0)
        node, kind = target, C.FROM_WIRE
    out[0] = C.O_DROPPED                     # a routing loop: the TTL runs out
    return


@njit(cache=True)
def run_batch(t, node, kind, src, dst, dport, proto, n, sport0, now, hold, counts, seen):
    """``n`` new connections from ``src`` (source ports from sport0 on) to ``dst:dport``, not kept in
    conntrack (``hold``: see run_flow). ``counts[pod]`` gets deliveries per pod; the last four cells
    count deliveries to a host, rejected, dropped and left the cluster. ``seen[pod]`` gets the source
    address the pod saw. Returns the number of rules visited."""
    pk = np.zeros(C.P_LEN, np.int64)
    stack = np.empty((MAXDEPTH, 2), np.int64)
    out = np.zeros(10, np.int64)
    tr = np.zeros((0, 9), np.int64)
    trn = np.zeros(2, np.int64)
    npods = counts.shape[0] - 4
    span = C.EPHEMERAL_HI - C.EPHEMERAL_LO + 1
    for k in range(n):
        pk[:] = 0
        pk[C.P_SRC], pk[C.P_DST], pk[C.P_DPORT], pk[C.P_PROTO] = src, dst, dport, proto
        pk[C.P_SPORT] = C.EPHEMERAL_LO + (sport0 + k) % span
        run_flow(t, node, kind, pk, now, False, 0.0, False, hold, stack, tr, trn, out)
        if out[0] == C.O_DELIVERED:
            if out[2] >= 0:
                counts[out[2]] += 1
                seen[out[2]] = out[5]
            else:
                counts[npods] += 1
        else:                                # O_REJECTED, O_DROPPED, O_LEFT = 2, 3, 4
            counts[npods + out[0] - 1] += 1
    return trn[1]
