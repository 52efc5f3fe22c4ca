"""Compile parsed rulesets (one per node) into the flat numeric tables the engine executes.

Rules are rows; the IP-header part of a rule (``-s -d -p -i -o``) has its own columns, as in the
kernel's ``ipt_entry``, and the ``-m`` matches are rows of a second table in rule order. Chains are
ranges of rule rows. nftables rules compile to the same rows (an nft rule's address, protocol and
port tests are the same tests), with verdict maps, numgen and set updates as targets.
``hooks[node, hook]`` lists what each hook runs in priority order: base chains (iptables' built-in
chains, nft's base chains), the conntrack NAT step, and IPVS where the node runs it. Named sets
(nft sets and maps, ipsets) become rows of ``sets``; their elements go into one hash table that the
network builds (``elements``), so a lookup costs the same for 10 elements or 100,000.
"""
from __future__ import annotations

import ipaddress
from collections import namedtuple
from dataclasses import replace

import numpy as np

from . import codes as C
from .nft import NftRuleset, NftSet
from .rules import ADDRTYPES, BUILTIN_CHAINS, PROTOCOLS, Rule, Ruleset

# The engine's arguments, in its order: rules (R_* columns), matches (M_* columns), chains (CH_*),
# hooks[node, hook, k] -> stage, numbers the rows point into (port lists, CIDR lists, numgen maps,
# prefix masks) and the named sets (S_* columns).
Program = namedtuple("Program", ["rules", "matches", "chains", "hooks", "aux", "sets"])
# ipset types kslib models: the dimension kinds of their entries (ipset(8) "TYPES")
IPSET_DIMS = {"hash:ip": ("ip",), "hash:ip,port": ("ip", "port"), "hash:ip,port,ip": ("ip", "port", "ip"),
              "hash:ip,port,net": ("ip", "port", "net"), "bitmap:port": ("port",), "hash:net": ("net",)}
_RULE_COLS = ("r_src", "r_smask", "r_sinv", "r_dst", "r_dmask", "r_dinv", "r_proto", "r_pinv", "r_in", "r_out",
              "r_m0", "r_m1", "r_tgt", "r_ta", "r_tb", "r_tc", "r_chain", "r_pkts")
_MATCH_COLS = ("m_op", "m_inv", "m_a", "m_b", "m_c", "m_d", "m_e", "m_count")
_CHAIN_COLS = ("c_start", "c_end", "c_policy", "c_nat")
_SET_COLS = ("s_node", "s_key", "s_timeout", "s_netpos", "s_pl0", "s_pl1")


def _mask(plen: int) -> int:
    return (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF if plen else 0


def _iface_mask(name: str, invert: bool) -> int:
    """Which of the node's interfaces (lo, eth0, cni0) an ``-i``/``-o`` name matches (``+`` = prefix)."""
    if name.endswith("+"):
        m = sum(bit for n, bit in C.IF_NAMES.items() if n.startswith(name[:-1]))
    else:
        m = C.IF_NAMES.get(name, 0)
    return (C.IF_ALL & ~m) if invert else m


def _bits(names, table) -> int:
    return sum(table[n] for n in names)


def key_spec(fields) -> int:
    """Packet fields (F_* codes) of a set key, packed 3 bits each."""
    spec = 0
    for k, f in enumerate(fields):
        spec |= f << (3 * k)
    return spec


def ipset_key(set_type: str, directions: tuple[str, ...]) -> list[int]:
    """The packet fields an ``-m set --match-set NAME dst,dst,src`` lookup takes for a set type: an ip or
    net dimension is one address, a port dimension is the protocol and the port (ipset's "proto:port")."""
    if set_type.startswith("bitmap:"):          # bitmap:port holds bare ports (the rule gives -p)
        return [C.F_SPORT if directions[0] == "src" else C.F_DPORT]
    out = []
    for dim, d in zip(IPSET_DIMS[set_type], directions):
        if dim == "port":
            out += [C.F_PROTO, C.F_SPORT if d == "src" else C.F_DPORT]
        else:
            out.append(C.F_SADDR if d == "src" else C.F_DADDR)
    return out


def ipset_entry(set_type: str, entry: str) -> tuple[tuple[int, ...], int]:
    """An ipset entry (``10.96.0.10,udp:53``, ``30080``, ``203.0.113.7,tcp:80,10.0.1.0/24``) as key
    numbers in ``ipset_key`` order, plus the prefix length of a net dimension (32 otherwise)."""
    dims = IPSET_DIMS[set_type]
    parts = entry.split(",")
    if len(parts) != len(dims):
        raise ValueError(f"ipset entry {entry!r} does not fit type {set_type}")
    key, plen = [], 32
    for dim, part in zip(dims, parts):
        if dim == "port":
            if set_type.startswith("bitmap:"):
                key.append(int(part))
                continue
            proto, _, port = part.rpartition(":")
            key += [PROTOCOLS[proto or "tcp"], int(port)]
        else:
            net = ipaddress.IPv4Network(part, strict=False)
            key.append(int(net.network_address))
            if dim == "net":
                plen = net.prefixlen
    return tuple(key), plen

class Compiler:
    """Collects rows for every node's rulesets, then freezes them into a ``Program``."""

    def __init__(self):
        self.rules: list[tuple[int, Rule]] = []           # global rule index -> (node, Rule)
        self.chains: list[tuple[int, str, str]] = []      # global chain index -> (node, table, name)
        self.recent: list[tuple[int, str]] = []           # recent table index -> (node, name)
        self.positions: list[int] = []                     # global rule index -> 1-based place in its chain
        self.sets: list[tuple[int, str]] = []             # set index -> (node, name)
        self.set_ids: dict[tuple[int, str], int] = {}
        self.elements: list[tuple] = []                   # static elements: (set, k0, k1, k2, k3, va, vb)
        self._set_types: dict[int, str] = {}               # ipset types, by set index
        self._recent_ids: dict[tuple[int, str], int] = {}
        self._cols: dict[str, list] = {f: [] for f in _RULE_COLS + _MATCH_COLS + _CHAIN_COLS + _SET_COLS + ("aux",)}
        self._hooks: list[np.ndarray] = []

    def add_node(self, node: int, rs: Ruleset | None = None, nft: NftRuleset | None = None,
                 ipsets: dict | None = None, ipvs: bool = False) -> None:
        """One node's netfilter: iptables tables, an nft table, the ipsets its rules match, and
        whether IPVS runs on its LOCAL_IN and LOCAL_OUT hooks."""
        stages: list[tuple[int, int, int]] = []            # (hook, priority, stage)
        for name, s in (ipsets or {}).items():
            self._add_ipset(node, name, s)
        if rs is not None:
            chain_ids = self._declare(node, [(t, n) for t, table in rs.tables.items() for n in table])
            for (tname, name), cid in chain_ids.items():
                chain = rs.tables[tname][name]
                self._add_chain(node, cid, chain, chain_ids, tname, nat=tname == "nat")
                if name in BUILTIN_CHAINS[tname]:
                    hook = C.HOOK_NAMES.index(name)
                    prio = C.NAT_PRIORITY[hook] if tname == "nat" else C.TABLE_PRIORITY[tname]
                    stages.append((hook, prio, cid))
        if nft is not None:
            chain_ids = self._declare(node, [(nft.name, n) for n in nft.chains])
            for s in nft.sets.values():
                self._add_nft_set(node, s, {name: cid for (_, name), cid in chain_ids.items()})
            for (tname, name), cid in chain_ids.items():
                base = nft.base.get(name)
                self._add_chain(node, cid, nft.chains[name], chain_ids, tname, nat=bool(base and base[2] == "nat"))
                if base:
                    stages.append((C.HOOK_NAMES.index(base[0]), base[1], cid))
        nat_chains = {cid for (_, _, cid) in stages if self._cols["c_nat"][cid]}
        for hook, prio in C.NAT_PRIORITY.items():
            # conntrack's NAT step sits where the nat chains run (NF_IP_PRI_NAT_* by default)
            prios = [p for (h, p, cid) in stages if h == hook and cid in nat_chains]
            stages.append((hook, min(prios) if prios else prio, C.STAGE_NAT))
        if ipvs:
            stages += [(hook, prio, C.STAGE_IPVS) for hook, prio in C.IPVS_PRIORITY.items()]
        hooks = np.full((5, C.STAGES), C.STAGE_END, dtype=np.int64)
        for hook in range(5):
            # stable by priority; at one priority the NAT step comes before the nat chains it runs
            mine = sorted(((p, 0 if st == C.STAGE_NAT else 1, k, st) for k, (h, p, st) in enumerate(stages)
                           if h == hook))
            if len(mine) > C.STAGES:
                raise ValueError(f"more than {C.STAGES} base chains on hook {C.HOOK_NAMES[hook]}")
            hooks[hook, :len(mine)] = [st for (_, _, _, st) in mine]
        self._hooks.append(hooks)

    def _declare(self, node: int, names: list[tuple[str, str]]) -> dict:
        ids = {key: len(self.chains) + k for k, key in enumerate(names)}
        self.chains.extend((node, t, n) for (t, n) in names)
        return ids

    def _add_chain(self, node: int, cid: int, chain, chain_ids, tname: str, nat: bool) -> None:
        cols = self._cols
        cols["c_start"].append(len(self.rules))
        for k, rule in enumerate(chain.rules, start=1):
            self._add_rule(node, cid, rule, chain_ids, tname)
            self.positions.append(k)
        cols["c_end"].append(len(self.rules))
        cols["c_policy"].append(C.POLICY_CODES[chain.policy])
        cols["c_nat"].append(int(nat))

    # ---- sets -------------------------------------------------------------------------------------------
    def _new_set(self, node: int, name: str, key: int, timeout: float | None, netpos: int = -1,
                 masks=()) -> int:
        sid = len(self.sets)
        self.sets.append((node, name))
        self.set_ids[(node, name)] = sid
        c = self._cols
        c["s_node"].append(node)
        c["s_key"].append(key)
        c["s_timeout"].append(int(round(timeout * 1e6)) if timeout else 0)
        c["s_netpos"].append(netpos)
        c["s_pl0"].append(len(c["aux"]))
        c["aux"].extend(masks)
        c["s_pl1"].append(len(c["aux"]))
        return sid

    def kernel_set(self, node: int, name: str) -> int:
        """A keyed table of the node's kernel (IPVS services, connections, eBPF maps): a set of kslib's own."""
        return self._new_set(node, name, 0, None)

    def _add_ipset(self, node: int, name: str, s) -> None:
        set_type, entries = s
        if set_type not in IPSET_DIMS:
            raise ValueError(f"ipset {name}: type {set_type} is not modelled")
        dims = IPSET_DIMS[set_type]
        keys = [ipset_entry(set_type, e) for e in entries]
        netpos = -1
        if "net" in dims:
            netpos = len(ipset_key(set_type, tuple("src" for _ in dims))) - 1 if dims[-1] == "net" else 0
        masks = sorted({_mask(p) for _, p in keys}, reverse=True) if netpos >= 0 else ()
        sid = self._new_set(node, name, 0, None, netpos, masks)
        self._set_types[sid] = set_type
        for key, _ in keys:
            self.elements.append((sid, *key, *(0,) * (4 - len(key)), 0, 0))

    def _add_nft_set(self, node: int, s: NftSet, chain_ids: dict[str, int]) -> None:
        if s.interval:       # prefixes: looked up once per distinct prefix length, longest first
            masks = sorted({_mask(k[0][1]) for k, _ in s.elements}, reverse=True)
            sid = self._new_set(node, s.name, 0, s.timeout, 0, masks)
        else:
            sid = self._new_set(node, s.name, 0, s.timeout)
        for key, value in s.elements:
            key = tuple(k[0] if isinstance(k, tuple) else k for k in key)
            va, vb = (C.VERDICT_CODES[value[0]], chain_ids[value[1]] if value[1] else -1) if value else (0, 0)
            self.elements.append((sid, *key, *(0,) * (4 - len(key)), va, vb))

    def _recent_id(self, node: int, name: str) -> int:
        key = (node, name)
        if key not in self._recent_ids:
            self._recent_ids[key] = len(self.recent)
            self.recent.append(key)
        return self._recent_ids[key]

    def _add_rule(self, node: int, cid: int, rule: Rule, chain_ids, tname: str) -> None:
        c = self._cols
        hdr = dict(r_src=0, r_smask=0, r_sinv=0, r_dst=0, r_dmask=0, r_dinv=0, r_proto=-1, r_pinv=0,
                   r_in=-1, r_out=-1)
        c["r_m0"].append(len(c["m_op"]))
        seen = set()
        for m in rule.matches:
            if m.kind in ("src", "dst") and m.kind in seen:     # an nft rule may test an address twice
                self._add_match(node, replace(m, kind="cidrs", args=("ip " + m.kind[0] + "addr", (m.args,))))
            elif m.kind in ("src", "dst"):
                seen.add(m.kind)
                p = "r_s" if m.kind == "src" else "r_d"
                hdr["r_" + m.kind] = m.args[0]
                hdr[p + "mask"] = _mask(m.args[1])
                hdr[p + "inv"] = int(m.invert)
            elif m.kind == "proto":
                hdr["r_proto"] = m.args[0] if m.args[0] else -1
                hdr["r_pinv"] = int(m.invert)
            elif m.kind in ("in", "out"):
                hdr["r_" + m.kind] = _iface_mask(m.args[0], m.invert)
            else:
                self._add_match(node, m)
        c["r_m1"].append(len(c["m_op"]))
        for k, v in hdr.items():
            c[k].append(v)
        tgt, a, b, cc = C.T_NONE, 0, 0, 0
        args = rule.target_args
        if rule.target in ("VMAP", "UPDATE"):
            tgt = C.T_VMAP if rule.target == "VMAP" else C.T_UPDATE
            a = self.set_ids[(node, args["set"])]
            b = key_spec(C.FIELD_NAMES[f] for f in args["fields"])
        elif rule.target == "NUMGEN":
            tgt, a, b = C.T_NUMGEN, args["mod"], len(c["aux"])
            for k in range(args["mod"]):
                verdict, chain = args["entries"].get(k, ("continue", None))
                c["aux"].extend((C.VERDICT_CODES[verdict], chain_ids[(tname, chain)] if chain else -1))
        elif rule.target in C.TARGET_CODES:
            tgt = C.TARGET_CODES[rule.target]
            if tgt == C.T_DNAT or tgt == C.T_SNAT:
                a, b = args["ip"], args.get("port", 0)
            elif tgt == C.T_MARK:
                a, b = args["value"], args["mask"]
            elif tgt == C.T_REJECT:
                a = 1 if args.get("with") == "tcp-reset" else 0
            elif tgt == C.T_MASQ:
                cc = int(bool(args.get("random-fully")))
        elif rule.target:
            tgt = C.T_GOTO if rule.goto else C.T_JUMP
            a = chain_ids[(tname, rule.target)]
        c["r_tgt"].append(tgt)
        c["r_ta"].append(a)
        c["r_tb"].append(b)
        c["r_tc"].append(cc)
        c["r_chain"].append(cid)
        c["r_pkts"].append(0)
        self.rules.append((node, rule))

    def _add_match(self, node: int, m) -> None:
        c = self._cols
        row = [0, int(m.invert), 0, 0, 0, 0, 0]
        if m.kind in ("dport", "sport"):
            row[0] = C.M_DPORT if m.kind == "dport" else C.M_SPORT
            row[2], row[3] = m.args
        elif m.kind in ("dports", "sports", "ports"):
            row[0] = C.M_PORTS
            row[2] = len(c["aux"])
            for lo, hi in m.args:
                c["aux"].extend((lo, hi))
            row[3] = len(c["aux"])
            row[4] = ("dports", "sports", "ports").index(m.kind)
        elif m.kind in ("srctype", "dsttype"):
            row[0] = C.M_SRCTYPE if m.kind == "srctype" else C.M_DSTTYPE
            row[2] = sum(1 << ADDRTYPES.index(t) for t in m.args)
        elif m.kind == "mark":
            row[0] = C.M_MARK
            row[2], row[3] = m.args
        elif m.kind == "ctstate":
            row[0] = C.M_CTSTATE
            row[2] = _bits(m.args, C.CTSTATE_BITS)
        elif m.kind == "random":
            row[0] = C.M_RANDOM
            row[2] = m.args[0]
        elif m.kind == "nth":
            row[0] = C.M_NTH
            row[2], row[3] = m.args[0] - 1, m.args[1]      # xt_statistic keeps every-1; the count starts at packet
        elif m.kind == "recent":
            mode, name, seconds, reap, side = m.args
            row[0] = C.M_RECENT
            row[2:6] = [C.RECENT_MODES[mode], self._recent_id(node, name), seconds, int(reap)]
            row[6] = int(side == "dest")
        elif m.kind in ("icmptype", "ipvs"):
            row[0] = C.M_NEVER            # kslib's packets are TCP, UDP or SCTP; no host socket uses a VIP
        elif m.kind == "set":
            name, fields = m.args
            row[0] = C.M_SET
            sid = self.set_ids.get((node, name))
            if sid is None:
                raise ValueError(f"a rule matches set {name}, which the node does not have")
            row[2] = sid
            if sid in self._set_types:    # an ipset, matched by direction (src,dst,...)
                row[3] = key_spec(ipset_key(self._set_types[sid], fields))
            else:
                row[3] = key_spec(C.FIELD_NAMES[f] for f in fields)
        elif m.kind == "cidrs":
            field, nets = m.args
            row[0] = C.M_CIDRS
            row[2] = len(c["aux"])
            for net, plen in nets:
                c["aux"].extend((net, _mask(plen)))
            row[3] = len(c["aux"])
            row[4] = int(field == "ip daddr")
        else:
            raise AssertionError(m.kind)   # the parser only produces the kinds above
        for name, v in zip(("m_op", "m_inv", "m_a", "m_b", "m_c", "m_d", "m_e"), row):
            c[name].append(v)
        # libxt_statistic starts the shared count at (every-1) - packet, so packet p matches first
        c["m_count"].append(row[2] - row[3] if row[0] == C.M_NTH else 0)

    def program(self) -> Program:
        def table(cols):
            return np.ascontiguousarray(np.array([self._cols[c] for c in cols], dtype=np.int64).reshape(len(cols), -1).T)
        return Program(rules=table(_RULE_COLS), matches=table(_MATCH_COLS), chains=table(_CHAIN_COLS),
                       hooks=np.stack(self._hooks) if self._hooks else np.full((0, 5, C.STAGES), -1, np.int64),
                       aux=np.asarray(self._cols["aux"] or [0], dtype=np.int64), sets=table(_SET_COLS))
