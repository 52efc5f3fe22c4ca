"""Compile parsed rulesets (one per node) into the flat numeric tables the engine executes.

Rules are rows; the IP-header part of a rule (``-s -d -p -i -o``) has its own columns, as in the
kernel's ``ipt_entry``, and the ``-m`` matches are rows of a second table in rule order. Chains are
ranges of rule rows. ``hooks[node, hook, table]`` names the built-in chain a hook enters.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from . import codes as C
from .rules import ADDRTYPES, BUILTIN_CHAINS, Rule, Ruleset

# The engine's arguments, in its order: rules (R_* columns), matches (M_* columns), chains (CH_*),
# hooks[node, hook, table] -> chain, and port lists for multiport.
Program = namedtuple("Program", ["rules", "matches", "chains", "hooks", "aux"])
_RULE_COLS = ("r_src", "r_smask", "r_sinv", "r_dst", "r_dmask", "r_dinv", "r_proto", "r_pinv", "r_in", "r_out",
              "r_m0", "r_m1", "r_tgt", "r_ta", "r_tb", "r_tc", "r_chain", "r_pkts")
_MATCH_COLS = ("m_op", "m_inv", "m_a", "m_b", "m_c", "m_d", "m_e", "m_count")
_CHAIN_COLS = ("c_start", "c_end", "c_policy")


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


class Compiler:
    """Collects rows for every node's ruleset, then freezes them into a ``Program``."""

    def __init__(self):
        self.rules: list[tuple[int, Rule]] = []           # global rule index -> (node, Rule)
        self.chains: list[tuple[int, str, str]] = []      # global chain index -> (node, table, name)
        self.recent: list[tuple[int, str]] = []           # recent table index -> (node, name)
        self.positions: list[int] = []                     # global rule index -> 1-based place in its chain
        self._recent_ids: dict[tuple[int, str], int] = {}
        self._cols: dict[str, list] = {f: [] for f in _RULE_COLS + _MATCH_COLS + _CHAIN_COLS + ("aux",)}
        self._hooks: list[np.ndarray] = []

    def add_node(self, node: int, rs: Ruleset) -> None:
        hooks = np.full((5, 4), -1, dtype=np.int64)
        chain_ids: dict[tuple[str, str], int] = {}
        for tname, table in rs.tables.items():
            for name in table:
                chain_ids[(tname, name)] = len(self.chains) + len(chain_ids)
        self.chains.extend((node, t, n) for (t, n) in chain_ids)
        cols = self._cols
        for (tname, name), cid in chain_ids.items():
            chain = rs.tables[tname][name]
            cols["c_start"].append(len(self.rules))
            for k, rule in enumerate(chain.rules, start=1):
                self._add_rule(node, cid, rule, chain_ids)
                self.positions.append(k)
            cols["c_end"].append(len(self.rules))
            cols["c_policy"].append(C.POLICY_CODES[chain.policy])
            if name in BUILTIN_CHAINS[tname]:
                hooks[C.HOOK_NAMES.index(name), C.TABLE_NAMES.index(tname)] = cid
        self._hooks.append(hooks)

    def _recent_id(self, node: int, name: str) -> int:
        key = (node, name)
        if key not in self._recent_ids:
            self._recent_ids[key] = len(self.recent)
            self.recent.append(key)
        return self._recent_ids[key]

    def _add_rule(self, node: int, cid: int, rule: Rule, chain_ids) -> None:
        c = self._cols
        hdr = dict(r_src=0, r_smask=0, r_sinv=0, r_dst=0, r_dmask=0, r_dinv=0, r_proto=-1, r_pinv=0,
                   r_in=-1, r_out=-1)
        c["r_m0"].append(len(c["m_op"]))
        for m in rule.matches:
            if m.kind in ("src", "dst"):
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
        if rule.target in C.TARGET_CODES:
            tgt = C.TARGET_CODES[rule.target]
            args = rule.target_args
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
            a = chain_ids[(rule.table, rule.target)]
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
        elif m.kind == "icmptype":
            row[0] = C.M_NEVER            # kslib's packets are TCP, UDP or SCTP
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
                       hooks=np.stack(self._hooks) if self._hooks else np.full((0, 5, 4), -1, dtype=np.int64),
                       aux=np.asarray(self._cols["aux"] or [0], dtype=np.int64))
