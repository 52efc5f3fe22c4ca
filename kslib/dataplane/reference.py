"""A plain-Python reference of the engine, for tests and for the speed comparison.

It is written independently of the numba kernels: it walks the parsed ``Rule`` objects (not the
compiled arrays), keeps conntrack in a dict and the ``recent`` tables in ordered dicts. Given the
same network, rules and random stream it must reach the same decision as ``engine.run_flow`` for
every packet; ``tests/test_engine.py`` checks that on random traffic.
"""
from __future__ import annotations

import ipaddress
from collections import OrderedDict

from . import codes as C
from .rules import Rule, Ruleset

MASK64 = (1 << 64) - 1
NAT_TARGETS = ("DNAT", "SNAT", "MASQUERADE")


class SplitMix:
    """The engine's random stream (splitmix64), in Python integers."""

    def __init__(self, state: int):
        self.state = int(state) & MASK64

    def next31(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return (z ^ (z >> 31)) >> 33


def _in(addr: int, net: tuple[int, int]) -> bool:
    plen = net[1]
    mask = ((1 << plen) - 1) << (32 - plen) if plen else 0
    return addr & mask == net[0]


class ReferenceNetwork:
    """The cluster's nodes, pods and rulesets, and ``flow`` to carry a packet, as the engine does."""

    def __init__(self, nodes, pods, rulesets: dict[str, Ruleset], rng_state: int,
                 service_cidr: str = "10.96.0.0/12"):
        self.nodes = sorted(nodes, key=lambda n: n.name)
        self.service_cidr = ipaddress.IPv4Network(service_cidr, strict=False)
        self.rulesets = rulesets
        self.rng = SplitMix(rng_state)
        self.ip = [int(ipaddress.IPv4Address(n.ip)) for n in self.nodes]
        self.pod_net = [ipaddress.IPv4Network(n.pod_cidr) if n.pod_cidr else None for n in self.nodes]
        self.pods = {int(ipaddress.IPv4Address(p.ip)): p for p in pods}
        self.conntrack: dict[tuple, dict] = {}
        self.recent: dict[tuple[str, str], OrderedDict] = {}
        self.nth: dict[int, int] = {}
        self.visited = 0

    # ---- addresses ------------------------------------------------------------------------------------
    def gw(self, i: int) -> int:
        net = self.pod_net[i]
        return int(net.network_address) + 1 if net else 0

    def addr_type(self, i: int, addr: int) -> str:
        if addr in (self.ip[i], self.gw(i)) or addr >> 24 == 127:
            return "LOCAL"
        if addr in (0, 0xFFFFFFFF):
            return "BROADCAST"
        if addr >> 28 == 14:
            return "MULTICAST"
        return "UNICAST"

    def route(self, i: int, addr: int):
        if self.addr_type(i, addr) == "LOCAL":
            return C.R_LOCAL, i
        a = ipaddress.IPv4Address(addr)
        if self.pod_net[i] and a in self.pod_net[i]:
            return (C.R_POD, self.pods[addr]) if addr in self.pods else (C.R_NO_POD, None)
        for m in range(len(self.nodes)):
            if m != i and (addr == self.ip[m] or (self.pod_net[m] and a in self.pod_net[m])):
                return C.R_NODE, m
        return C.R_EXTERNAL, None

    @staticmethod
    def out_if(kind: int) -> str:
        return {C.R_LOCAL: "lo", C.R_POD: "cni0", C.R_NO_POD: "cni0"}.get(kind, "eth0")

    # ---- matching ---------------------------------------------------------------------------------------
    def matches(self, i: int, rule: Rule, pkt: dict, now: float) -> bool:
        header = [m for m in rule.matches if m.kind in ("src", "dst", "proto", "in", "out")]
        others = [m for m in rule.matches if m.kind not in ("src", "dst", "proto", "in", "out")]
        for m in header:                      # ip_packet_match: no side effects, order free
            if m.kind in ("src", "dst"):
                hit = _in(pkt[m.kind], m.args)
            elif m.kind == "proto":
                hit = m.args[0] == 0 or pkt["proto"] == m.args[0]
            else:
                name = m.args[0]
                have = pkt[m.kind]
                hit = have is not None and (have.startswith(name[:-1]) if name.endswith("+") else have == name)
            if hit == m.invert:
                return False
        for m in others:                      # in order, stopping at the first failure
            if self.one(i, m, pkt, now) == m.invert:
                return False
        return True

    def one(self, i: int, m, pkt: dict, now: float) -> bool:
        k, a = m.kind, m.args
        if k == "dport":
            return a[0] <= pkt["dport"] <= a[1]
        if k == "sport":
            return a[0] <= pkt["sport"] <= a[1]
        if k in ("dports", "sports", "ports"):
            fields = {"dports": ("dport",), "sports": ("sport",), "ports": ("dport", "sport")}[k]
            return any(lo <= pkt[f] <= hi for lo, hi in a for f in fields)
        if k in ("srctype", "dsttype"):
            return self.addr_type(i, pkt["src" if k == "srctype" else "dst"]) in a
        if k == "mark":
            return pkt["mark"] & a[1] == a[0]
        if k == "ctstate":
            return bool(set(a) & pkt["ctstate"])
        if k == "random":
            return self.rng.next31() < a[0]
        if k == "nth":
            key = id(m)
            count = self.nth.get(key, (a[0] - 1) - a[1])
            count = 0 if count == a[0] - 1 else count + 1
            self.nth[key] = count
            return count == 0
        if k == "recent":
            return self.recent_match(i, a, pkt, now)
        return False                          # icmptype: never a TCP/UDP/SCTP packet

    def recent_match(self, i: int, args, pkt: dict, now: float) -> bool:
        mode, name, seconds, reap, side = args
        table = self.recent.setdefault((self.nodes[i].name, name), OrderedDict())   # LRU order, oldest first
        addr = pkt["dst" if side == "dest" else "src"]
        now_us = int(now * 1e6)
        if addr not in table:
            if mode != "set":
                return False
            if len(table) >= C.RECENT_SIZE:
                table.popitem(last=False)
            table[addr] = now_us
            return True
        if mode == "remove":
            del table[addr]
            return True
        if mode == "set":
            table[addr] = now_us
            table.move_to_end(addr)
            return True
        hit = seconds == 0 or table[addr] >= now_us - seconds * 1000000
        if reap:
            head = next(iter(table))
            if table[head] < now_us - seconds * 1000000:
                del table[head]
        if mode == "update" and hit and addr in table:
            table[addr] = now_us
            table.move_to_end(addr)
        return hit

    # ---- one table at one hook ---------------------------------------------------------------------------
    def walk(self, i: int, hook: str, table: str, pkt: dict, now: float, log: list) -> str:
        tables = self.rulesets[self.nodes[i].name].tables.get(table, {})
        if hook not in tables:
            return "ACCEPT"
        stack: list[tuple[str, int]] = []
        chain, pos = hook, 0
        while True:
            rules = tables[chain].rules
            if pos >= len(rules):
                if not stack:
                    log.append((self.nodes[i].name, hook, table, chain, None))
                    return "DROP" if tables[chain].policy == "DROP" else "ACCEPT"
                chain, pos = stack.pop()
                continue
            rule = rules[pos]
            self.visited += 1
            if not self.matches(i, rule, pkt, now):
                pos += 1
                continue
            log.append((self.nodes[i].name, hook, table, chain, rule.text))
            t, args = rule.target, rule.target_args
            if t in ("ACCEPT", "DROP"):
                return t
            if t == "REJECT":
                pkt["reject"] = 1 if args["with"] == "tcp-reset" else 0
                return "REJECT"
            if t == "RETURN":
                pos = len(rules)
            elif t == "DNAT":
                pkt["dst"] = args["ip"]
                pkt["dport"] = args["port"] or pkt["dport"]
                pkt["ctstate"].add("DNAT")
                return "ACCEPT"
            elif t in ("SNAT", "MASQUERADE"):
                if t == "SNAT":
                    pkt["src"] = args["ip"]
                    pkt["sport"] = args["port"] or pkt["sport"]
                else:
                    pkt["src"] = self.gw(i) if pkt["out"] == "cni0" else self.ip[i]
                    if args.get("random-fully"):
                        pkt["sport"] = 1024 + self.rng.next31() % (65536 - 1024)
                pkt["ctstate"].add("SNAT")
                return "ACCEPT"
            elif t == "MARK":
                pkt["mark"] = ((pkt["mark"] & ~args["mask"]) ^ args["value"]) & 0xFFFFFFFF
                pos += 1
            elif t in ("", "LOG"):
                pos += 1
            else:                              # a user chain
                if not rule.goto:
                    if len(stack) == 64:
                        return "DROP"
                    stack.append((chain, pos + 1))
                chain, pos = t, 0

    # ---- the flow --------------------------------------------------------------------------------------
    def flow(self, node: str, kind: int, src: int, dst: int, sport: int, dport: int, proto: int, now: float,
             commit: bool, ttl: float, reply: bool) -> dict:
        i = [n.name for n in self.nodes].index(node)
        pkt = {"src": src, "dst": dst, "sport": sport, "dport": dport, "proto": proto, "reject": 0}
        log: list = []
        for _ in range(16):
            orig = (pkt["src"], pkt["dst"], pkt["sport"], pkt["dport"])
            entry, direction = self.lookup(i, pkt, now)
            pkt["mark"] = 0
            if entry is None:
                pkt["ctstate"] = {"NEW"}
            else:
                if direction == 1:
                    entry["seen_reply"] = True
                pkt["ctstate"] = {"ESTABLISHED" if direction == 1 or entry["seen_reply"] else "NEW"}
                pkt["ctstate"] |= {"DNAT"} if entry["dnat"] else set()
                pkt["ctstate"] |= {"SNAT"} if entry["snat"] else set()
            rk, target = self.route(i, pkt["dst"])
            if kind == C.LOCAL_OUT:
                pkt["in"], pkt["out"], hook = None, self.out_if(rk), "OUTPUT"
            else:
                pkt["in"], pkt["out"], hook = ("cni0" if kind == C.FROM_POD else "eth0"), None, "PREROUTING"
            verdict = "ACCEPT"
            while hook:
                for table in (C.TABLE_NAMES[t] for t in C.HOOK_TABLES[C.HOOK_NAMES.index(hook)]):
                    if table == "nat" and entry is not None:
                        want = entry["reply"] if direction == 0 else entry["orig"]
                        if hook in ("PREROUTING", "OUTPUT"):
                            pkt["dst"], pkt["dport"] = want[0], want[2]
                        else:
                            pkt["src"], pkt["sport"] = want[1], want[3]
                        continue
                    verdict = self.walk(i, hook, table, pkt, now, log)
                    if verdict != "ACCEPT":
                        break
                if verdict != "ACCEPT":
                    break
                if hook in ("PREROUTING", "OUTPUT"):
                    rk, target = self.route(i, pkt["dst"])
                    pkt["out"] = self.out_if(rk)
                    hook = "POSTROUTING" if hook == "OUTPUT" else ("INPUT" if rk == C.R_LOCAL else "FORWARD")
                elif hook == "FORWARD":
                    hook = "POSTROUTING"
                elif hook == "POSTROUTING" and kind == C.LOCAL_OUT and rk == C.R_LOCAL:
                    pkt["in"], hook = "lo", "INPUT"
                else:
                    hook = None
            result = {"node": self.nodes[i].name, "pod": None, "dst": pkt["dst"], "dport": pkt["dport"],
                      "src": pkt["src"], "sport": pkt["sport"], "log": log}
            if verdict in ("DROP", "REJECT"):
                return {**result, "outcome": "dropped" if verdict == "DROP" else "rejected"}
            if entry is None and commit and "SNAT" in pkt["ctstate"]:
                while self.lookup(i, {"src": pkt["dst"], "dst": pkt["src"], "sport": pkt["dport"],
                                      "dport": pkt["sport"], "proto": pkt["proto"]}, now)[0] is not None:
                    pkt["sport"] = 1024 + (pkt["sport"] - 1024 + 1) % 64512     # the reply tuple is taken
            if entry is None and commit:
                self.confirm(i, orig, pkt, now + ttl)
            if rk in (C.R_LOCAL, C.R_POD):
                pod = target if rk == C.R_POD else None
                ok = reply or self.listening(i, pod, pkt["proto"], pkt["dport"])
                return {**result, "pod": pod.key if pod else None, "outcome": "delivered" if ok else "rejected"}
            if rk == C.R_NO_POD:
                return {**result, "outcome": "dropped"}
            if rk == C.R_EXTERNAL:
                # nothing outside the cluster answers for a ClusterIP
                lost = ipaddress.IPv4Address(pkt["dst"]) in self.service_cidr
                return {**result, "outcome": "dropped" if lost else "left"}
            i, kind = target, C.FROM_WIRE
        return {"outcome": "dropped", "log": log}

    def listening(self, i: int, pod, proto: int, port: int) -> bool:
        if pod is not None:
            return pod.ports is None or (proto, port) in pod.ports
        return (proto, port) in self.nodes[i].host_ports

    # ---- conntrack ------------------------------------------------------------------------------------------
    def lookup(self, i: int, pkt: dict, now: float):
        t = (pkt["src"], pkt["dst"], pkt["sport"], pkt["dport"])
        for direction in (0, 1):
            e = self.conntrack.get((i, pkt["proto"], direction, t))
            if e is not None and e["expires"] > now:
                return e, direction
        return None, 0

    def confirm(self, i: int, orig: tuple, pkt: dict, expires: float) -> None:
        reply = (pkt["dst"], pkt["src"], pkt["dport"], pkt["sport"])
        e = {"orig": orig, "reply": reply, "expires": expires, "seen_reply": False,
             "dnat": "DNAT" in pkt["ctstate"], "snat": "SNAT" in pkt["ctstate"]}
        self.conntrack.setdefault((i, pkt["proto"], 0, orig), e)
        self.conntrack.setdefault((i, pkt["proto"], 1, reply), e)


__all__ = ["ReferenceNetwork", "SplitMix"]
