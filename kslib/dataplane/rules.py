"""iptables rulesets as text: the parser for ``iptables-save`` output and ``iptables-restore`` input.

It reads kslib's own ``render()`` output and a real node's dump alike: kube-proxy's argument order
(``-m comment --comment "x" -m tcp -p tcp -d 10.96.0.1 --dport 443``) as well as iptables-save's
(``-d 10.96.0.1/32 -p tcp -m comment --comment "x" -m tcp --dport 443``). Every rule keeps its line
number and text, so a trace can point back at it. Anything the engine cannot execute is refused with
the line number and the token (``IptablesSaveError``), never half-understood.
"""
from __future__ import annotations

import ipaddress
import re
from collections import Counter
from dataclasses import dataclass, field

TABLES = ("raw", "mangle", "nat", "filter")
BUILTIN_CHAINS = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
}
PROTOCOLS = {"all": 0, "icmp": 1, "tcp": 6, "udp": 17, "sctp": 132}
# xt_addrtype type names (include/uapi/linux/netfilter/xt_addrtype.h)
ADDRTYPES = ("UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "ANYCAST", "MULTICAST", "BLACKHOLE",
             "UNREACHABLE", "PROHIBIT", "THROW", "NAT", "XRESOLVE")
CTSTATES = ("INVALID", "NEW", "ESTABLISHED", "RELATED", "UNTRACKED", "SNAT", "DNAT")
REJECT_TYPES = ("icmp-port-unreachable", "icmp-net-unreachable", "icmp-host-unreachable",
                "icmp-proto-unreachable", "icmp-net-prohibited", "icmp-host-prohibited",
                "icmp-admin-prohibited", "tcp-reset")
# target -> (tables it is valid in, {option: takes a value})
TARGETS = {
    "ACCEPT": (TABLES, {}), "DROP": (TABLES, {}), "RETURN": (TABLES, {}),
    "REJECT": (("filter", "mangle", "raw"), {"--reject-with": True}),
    "DNAT": (("nat",), {"--to-destination": True, "--random": False, "--persistent": False}),
    "SNAT": (("nat",), {"--to-source": True, "--random": False, "--random-fully": False, "--persistent": False}),
    "MASQUERADE": (("nat",), {"--to-ports": True, "--random": False, "--random-fully": False}),
    "MARK": (TABLES, {"--set-xmark": True, "--set-mark": True, "--or-mark": True, "--xor-mark": True,
                      "--and-mark": True}),
    "LOG": (TABLES, {"--log-prefix": True, "--log-level": True, "--log-tcp-sequence": False,
                     "--log-tcp-options": False, "--log-ip-options": False, "--log-uid": False}),
}
# match module -> {option: takes a value}
MODULES = {
    "tcp": {"--dport": True, "--destination-port": True, "--sport": True, "--source-port": True},
    "udp": {"--dport": True, "--destination-port": True, "--sport": True, "--source-port": True},
    "sctp": {"--dport": True, "--destination-port": True, "--sport": True, "--source-port": True},
    "multiport": {"--dports": True, "--destination-ports": True, "--sports": True, "--source-ports": True,
                  "--ports": True},
    "addrtype": {"--src-type": True, "--dst-type": True},
    "mark": {"--mark": True},
    "conntrack": {"--ctstate": True},
    "state": {"--state": True},
    "statistic": {"--mode": True, "--probability": True, "--every": True, "--packet": True},
    "recent": {"--name": True, "--set": False, "--rcheck": False, "--update": False, "--remove": False,
               "--seconds": True, "--reap": False, "--rsource": False, "--rdest": False,
               "--mask": True},
    "comment": {"--comment": True},
    "nfacct": {"--nfacct-name": True},
    "icmp": {"--icmp-type": True},
    "set": {"--match-set": True},          # NAME FLAGS: two values
    "physdev": {"--physdev-is-in": False},
    "ipvs": {"--vaddr": True, "--vproto": True, "--vport": True},
}


class IptablesSaveError(ValueError):
    """A line the parser cannot read or the engine cannot execute: names the line and the token."""

    def __init__(self, line_no: int, token: str, message: str, source: str = "<iptables-save>"):
        self.line_no, self.token, self.source = line_no, token, source
        super().__init__(f"{source} line {line_no}: {message} (at {token!r})")


@dataclass(frozen=True)
class Match:
    """One condition of a rule, e.g. ``Match("dport", False, (80, 80))``."""
    kind: str
    invert: bool
    args: tuple


@dataclass
class Rule:
    table: str
    chain: str
    line_no: int
    text: str
    matches: list[Match] = field(default_factory=list)
    target: str = ""                    # "" = no target: the rule counts and falls through
    goto: bool = False                  # -g instead of -j
    target_args: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return self.text


@dataclass
class Chain:
    name: str
    policy: str | None                  # ACCEPT/DROP for built-in chains, None for user chains
    rules: list[Rule] = field(default_factory=list)


@dataclass
class Ruleset:
    """Tables -> chains (in file order) -> rules."""
    tables: dict[str, dict[str, Chain]] = field(default_factory=dict)

    def chain(self, table: str, name: str) -> Chain | None:
        return self.tables.get(table, {}).get(name)

    def rules(self):
        for table in self.tables.values():
            for chain in table.values():
                yield from chain.rules

    def __len__(self) -> int:
        return sum(len(c.rules) for t in self.tables.values() for c in t.values())


HEADER_MATCHES = ("src", "dst", "proto", "in", "out")


def meaning(r: Rule):
    """What a rule does, whatever order and spelling its arguments were written in (kube-proxy's
    iptables-restore input or what iptables-save prints back): IP-header matches are order free
    (ip_packet_match), ``-m`` matches run in order; comments change nothing."""
    return (frozenset(m for m in r.matches if m.kind in HEADER_MATCHES),
            tuple(m for m in r.matches if m.kind not in HEADER_MATCHES),
            r.target, r.goto, tuple(sorted(r.target_args.items())))


# ---- value readers ----------------------------------------------------------------------------------
def parse_cidr(text: str) -> tuple[int, int]:
    """``10.0.0.0/8``, ``10.1.2.3``, ``10.0.0.0/255.0.0.0`` -> (network as int, prefix length)."""
    addr, slash, mask = text.partition("/")
    ip = int(ipaddress.IPv4Address(addr))
    if not slash:
        plen = 32
    elif "." in mask:
        plen = ipaddress.IPv4Network(f"0.0.0.0/{mask}").prefixlen
    else:
        plen = number(mask, 32, "a prefix length")
    netmask = (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF
    return ip & netmask, plen


U32 = 0xFFFFFFFF
_DECIMAL = re.compile(r"[0-9]{1,20}")
_STRTOUL = re.compile(r"0[xX][0-9a-fA-F]{1,20}|[0-9]{1,20}")


def number(text: str, hi: int = U32, what: str = "a number", lo: int = 0) -> int:
    """An unsigned decimal number as xtables_strtoui reads it (ASCII digits only), from lo to hi."""
    if not _DECIMAL.fullmatch(text) or not lo <= int(text) <= hi:
        raise ValueError(f"{text!r} is not {what} ({lo} to {hi})")
    return int(text)


def _port_range(text: str) -> tuple[int, int]:
    lo, sep, hi = text.partition(":")
    a = number(lo, 65535, "a port") if lo else 0
    b = (number(hi, 65535, "a port") if hi else 65535) if sep else a
    if not a <= b:
        raise ValueError(f"{text} is not a port or port range")
    return a, b


def _u32(text: str) -> int:
    """A 32-bit value as strtoul(..., 0) reads it: decimal, 0x hex or 0 octal."""
    if not _STRTOUL.fullmatch(text):
        raise ValueError(f"{text!r} is not a number")
    v = int(text, 16) if text[:2] in ("0x", "0X") else int(text, 8) if text.startswith("0") else int(text)
    if v > U32:
        raise ValueError(f"{text} is larger than 0xffffffff")
    return v


def _mark(text: str) -> tuple[int, int]:
    value, _, mask = text.partition("/")
    return _u32(value), (_u32(mask) if mask else U32)


def _probability(text: str) -> int:
    p = float(text)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability {text} is not between 0 and 1")
    # libxt_statistic stores lround(2^31 * p); the kernel matches when (random & 0x7fffffff) < that
    return int(p * 0x80000000 + 0.5)


# ---- building matches and targets from collected options ----------------------------------------------
def _build_match(module: str, opts: dict) -> list[Match]:
    """``opts``: option -> (value or None, inverted). Returns the module's Match objects."""
    def one(*names):
        for n in names:
            if n in opts:
                return opts[n]
        return None

    out = []
    if module in ("tcp", "udp", "sctp"):
        for kind, names in (("dport", ("--dport", "--destination-port")), ("sport", ("--sport", "--source-port"))):
            o = one(*names)
            if o:
                out.append(Match(kind, o[1], _port_range(o[0])))
    elif module == "multiport":
        for kind, names in (("dports", ("--dports", "--destination-ports")),
                            ("sports", ("--sports", "--source-ports")), ("ports", ("--ports",))):
            o = one(*names)
            if o:
                out.append(Match(kind, o[1], tuple(_port_range(p) for p in o[0].split(","))))
    elif module == "addrtype":
        for kind, name in (("srctype", "--src-type"), ("dsttype", "--dst-type")):
            if name in opts:
                types = tuple(opts[name][0].split(","))
                bad = [t for t in types if t not in ADDRTYPES]
                if bad:
                    raise ValueError(f"unknown address type {bad[0]}")
                out.append(Match(kind, opts[name][1], types))
    elif module == "mark":
        o = one("--mark")
        out.append(Match("mark", o[1], _mark(o[0])))
    elif module in ("conntrack", "state"):
        o = one("--ctstate", "--state")
        states = tuple(o[0].split(","))
        bad = [s for s in states if s not in CTSTATES]
        if bad:
            raise ValueError(f"unknown conntrack state {bad[0]}")
        out.append(Match("ctstate", o[1], states))
    elif module == "statistic":
        mode = one("--mode")
        if mode is None or mode[0] not in ("random", "nth"):
            raise ValueError("--mode must be random or nth")
        if mode[0] == "random":
            p = one("--probability")
            out.append(Match("random", p[1] if p else False, (_probability(p[0]) if p else 0x80000000,)))
        else:
            every, packet = one("--every"), one("--packet")
            if every is None:
                raise ValueError("--every and --packet must be specified when using nth mode")
            n = number(every[0], U32, "--every", lo=1)                  # libxt_statistic: uint32, min 1
            p = number(packet[0], n - 1, "--packet") if packet else 0    # "0 <= p <= n-1"
            out.append(Match("nth", every[1], (n, p)))
    elif module == "recent":
        modes = [m for m in ("--set", "--rcheck", "--update", "--remove") if m in opts]
        if len(modes) != 1:
            raise ValueError("-m recent needs exactly one of --set, --rcheck, --update, --remove")
        if opts.get("--mask", ("255.255.255.255",))[0] != "255.255.255.255":
            raise ValueError("only --mask 255.255.255.255 is modelled")
        seconds = number(opts["--seconds"][0], U32, "--seconds") if "--seconds" in opts else 0
        if "--reap" in opts and not seconds:
            raise ValueError("--reap needs --seconds")
        out.append(Match("recent", opts[modes[0]][1], (
            modes[0][2:], opts.get("--name", ("DEFAULT",))[0], seconds, "--reap" in opts,
            "dest" if "--rdest" in opts else "source")))
    elif module == "icmp":
        out.append(Match("icmptype", opts["--icmp-type"][1], (opts["--icmp-type"][0],)))
    elif module == "physdev":
        # the packet came in through a bridge port: on a kslib node, a pod's veth on cni0
        out.append(Match("in", opts["--physdev-is-in"][1], ("cni0",)))
    elif module == "ipvs":
        # kube-proxy matches IPVS traffic whose source is an LB VIP the node itself picked
        # (KUBE-IPVS-OUT-FILTER); kslib's host sockets never take a VIP as source, so it never matches
        out.append(Match("ipvs", opts.get("--vaddr", (None, False))[1], tuple(
            opts[k][0] for k in ("--vaddr", "--vproto", "--vport") if k in opts)))
    elif module == "set":
        name, flags = opts["--match-set"][0]
        dirs = tuple(flags.split(","))
        if not 1 <= len(dirs) <= 3 or any(d not in ("src", "dst") for d in dirs):
            raise ValueError(f"--match-set flags {flags!r}: one to three of src,dst")
        out.append(Match("set", opts["--match-set"][1], (name, dirs)))
    # comment, nfacct: never change a verdict
    return out


def _build_target(target: str, opts: dict) -> dict:
    def v(name):
        return opts[name][0]
    a: dict = {}
    if target in ("DNAT", "SNAT"):
        key = "--to-destination" if target == "DNAT" else "--to-source"
        if key not in opts:
            raise ValueError(f"{target} needs {key}")
        host, sep, port = v(key).partition(":")
        a["ip"] = int(ipaddress.IPv4Address(host.split("-")[0]))
        a["port"] = _port_range(port.replace("-", ":"))[0] if sep else 0
    elif target == "MARK":
        forms = [f for f in ("--set-xmark", "--set-mark", "--or-mark", "--xor-mark", "--and-mark") if f in opts]
        if len(forms) != 1:
            raise ValueError("MARK needs one of --set-xmark, --set-mark, --or-mark, --xor-mark, --and-mark")
        val, mask = _mark(v(forms[0]))
        # libxt_MARK: every form becomes mark = (mark & ~mask) ^ value
        a["value"], a["mask"] = {
            "--set-xmark": (val, mask),
            "--set-mark": (val, mask | val),
            "--or-mark": (val, val),
            "--xor-mark": (val, 0),
            "--and-mark": (0, (~val) & 0xFFFFFFFF),
        }[forms[0]]
    elif target == "REJECT":
        a["with"] = v("--reject-with") if "--reject-with" in opts else "icmp-port-unreachable"
        if a["with"] not in REJECT_TYPES:
            raise ValueError(f"unknown --reject-with type {a['with']}")
    elif target == "MASQUERADE" and "--to-ports" in opts:
        a["ports"] = _port_range(v("--to-ports").replace("-", ":"))
    for flag in ("--random", "--random-fully", "--persistent"):
        if flag in opts:
            a[flag[2:]] = True
    return a


# ---- one rule line ----------------------------------------------------------------------------------
_TOKEN = re.compile(r'"([^"\\]*)"|([^ \t"]+)')
_BLANKS = re.compile(r"[ \t]+")


def tokenize(text: str) -> list[str]:
    """Split a rule line into arguments as iptables-restore does (xshared.c add_param_to_argv): at spaces
    and tabs only; double quotes group, and only inside them does a backslash escape; a single quote is
    an ordinary character. iptables-save only double-quotes whole comments, so a regular expression
    does for nearly every line; the rest go through ``_argv``."""
    if '"' not in text:
        return [t for t in _BLANKS.split(text) if t]        # most lines: nothing quoted
    tokens, end = [], 0
    for m in _TOKEN.finditer(text):
        gap = text[end:m.start()]
        if gap.strip(" \t") or (tokens and not gap):
            return _argv(text)                           # a"b", or an escape inside quotes
        tokens.append(m.group(1) if m.group(1) is not None else m.group(2))
        end = m.end()
    if text[end:].strip(" \t"):
        return _argv(text)
    return tokens


def _argv(text: str) -> list[str]:
    tokens, word, quoted, in_quotes, escaped = [], [], False, False, False
    for ch in text:
        if in_quotes:
            if escaped:
                word.append(ch)
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_quotes = False
            else:
                word.append(ch)
        elif ch == '"':
            in_quotes = quoted = True
        elif ch in " \t":
            if word or quoted:
                tokens.append("".join(word))
            word, quoted = [], False
        else:
            word.append(ch)
    if in_quotes:
        raise ValueError("a double quote is not closed")
    if word or quoted:
        tokens.append("".join(word))
    return tokens


_PARSED: dict[tuple[str, str], Rule] = {}     # rule text -> parsed rule; nodes share most lines


def parse_rule(table: str, line_no: int, text: str, declared=(), source: str = "<iptables-save>") -> Rule:
    """Parse one ``-A CHAIN ...`` line of ``table``. ``declared``: user chains a target may name."""
    cached = _PARSED.get((table, text))
    if cached is not None:
        if cached.target and cached.target not in TARGETS and cached.target not in declared:
            raise IptablesSaveError(line_no, cached.target,
                                    f"jump to chain {cached.target}, which table {table} does not declare", source)
        clone = object.__new__(Rule)     # dataclasses.replace, without its cost (a shallow copy)
        clone.__dict__.update(cached.__dict__)
        clone.line_no = line_no
        return clone
    rule = _parse_rule(table, line_no, text, declared, source)
    if len(_PARSED) > 1_000_000:
        _PARSED.clear()
    _PARSED[(table, text)] = rule
    return rule


def _parse_rule(table: str, line_no: int, text: str, declared, source: str) -> Rule:
    def fail(token, message):
        raise IptablesSaveError(line_no, token, message, source)

    try:
        tokens = tokenize(text)
    except ValueError as e:
        fail(text, f"cannot split the line: {e}")
    if len(tokens) < 2 or tokens[0] not in ("-A", "--append"):
        fail(tokens[0] if tokens else text, "expected -A CHAIN ...")
    rule = Rule(table, tokens[1], line_no, text)
    module: str | None = None            # the open match module and its options
    opts: dict = {}
    target_opts: dict = {}
    proto = None

    def close_module():
        nonlocal module, opts
        if module is not None:
            try:
                rule.matches.extend(_build_match(module, opts))
            except (ValueError, TypeError, KeyError) as e:
                fail(f"-m {module}", f"bad -m {module} options: {e}")
        module, opts = None, {}

    i, invert = 2, False
    while i < len(tokens):
        tok = tokens[i]

        def value():
            nonlocal i
            if i + 1 >= len(tokens):
                fail(tok, f"option {tok} needs a value")
            i += 1
            return tokens[i]

        if tok == "!":
            invert = True
            i += 1
            continue
        if rule.target:                                   # options of the target
            spec = TARGETS[rule.target][1] if rule.target in TARGETS else {}
            if tok not in spec:
                fail(tok, f"unsupported option {tok} of target {rule.target}")
            target_opts[tok] = (value() if spec[tok] else None, invert)
        elif tok in ("-s", "--source", "-d", "--destination"):
            v = value()
            try:
                net = parse_cidr(v)
            except ValueError:
                fail(v, "not an IPv4 address or CIDR")
            rule.matches.append(Match("src" if tok in ("-s", "--source") else "dst", invert, net))
        elif tok in ("-p", "--protocol"):
            v = value().lower()
            # xtables_parse_protocol: a name or a number up to 255
            proto = PROTOCOLS.get(v, int(v) if _DECIMAL.fullmatch(v) and int(v) <= 255 else None)
            if proto is None:
                fail(v, "unknown protocol")
            rule.matches.append(Match("proto", invert, (proto,)))
        elif tok in ("-i", "--in-interface", "-o", "--out-interface"):
            v = value()
            if len(v) >= 16:            # xtables_parse_interface
                fail(v, "interface name must be shorter than IFNAMSIZ (16)")
            rule.matches.append(Match("in" if tok in ("-i", "--in-interface") else "out", invert, (v,)))
        elif tok in ("-m", "--match"):
            close_module()
            module = value()
            if module not in MODULES:
                fail(f"-m {module}", f"unsupported match module {module!r}")
        elif tok in ("-j", "--jump", "-g", "--goto"):
            close_module()
            if invert:
                fail("!", "a target cannot be negated")
            rule.target, rule.goto = value(), tok in ("-g", "--goto")
            if rule.target in TARGETS:
                if table not in TARGETS[rule.target][0]:
                    fail(rule.target, f"target {rule.target} is not valid in table {table}")
            elif rule.target not in declared:
                if rule.target.isupper() and not rule.target.startswith(("KUBE-", "CNI-", "DOCKER")):
                    fail(rule.target, f"unsupported target {rule.target}")
                fail(rule.target, f"jump to chain {rule.target}, which table {table} does not declare")
        elif tok in ("-c", "--set-counters"):
            value()
            value()
        elif tok.startswith("--"):
            if module is None and tok in MODULES["tcp"] and proto in (6, 17, 132):
                module = {6: "tcp", 17: "udp", 132: "sctp"}[proto]     # -p loads its module implicitly
            if module is None:
                fail(tok, f"option {tok} outside any match module")
            spec = MODULES[module]
            if tok not in spec:
                fail(tok, f"unsupported option {tok} of match {module!r}")
            opts[tok] = ((value(), value()) if tok == "--match-set" else value() if spec[tok] else None, invert)
        else:
            fail(tok, "unexpected token")
        invert = False
        i += 1
    close_module()
    if rule.target in TARGETS:
        try:
            rule.target_args = _build_target(rule.target, target_opts)
        except ValueError as e:
            fail(rule.target, str(e))
        if rule.target == "DNAT" and rule.target_args["port"] and proto not in (6, 17, 132):
            fail("DNAT", "DNAT to a port needs -p tcp, udp or sctp")     # iptables-restore refuses it too
    return rule


# ---- whole files --------------------------------------------------------------------------------------
def parse(text: str, source: str = "<iptables-save>") -> Ruleset:
    """Parse ``iptables-save`` text (or ``iptables-restore`` input) into a Ruleset."""
    rs = Ruleset()
    pending: list[tuple[str, int, str]] = []          # rules are parsed once all chains are declared
    pending_chains: Counter = Counter()               # chain -> its pending rules (for -X, in O(1))
    user_chains: dict[str, set[str]] = {t: set() for t in TABLES}   # kept as chains come and go, not recounted
    table: dict[str, Chain] | None = None
    tname = ""
    # lines end at newline characters only, as iptables-restore reads them (fgets); a \r before the
    # newline (text pasted from Windows) is dropped
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for no, raw in enumerate(lines, start=1):
        line = raw.strip(" \t\r")
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):                      # iptables-save -c: "[pkts:bytes] -A ..."
            if "]" not in line:
                raise IptablesSaveError(no, line.split(" ")[0], "counters [packets:bytes] are not closed with ]",
                                        source)
            line = line.split("]", 1)[1].strip(" \t")
            if not line:
                raise IptablesSaveError(no, raw.strip(), "counters [packets:bytes] without a rule", source)
        if line.startswith("*"):
            if table is not None:
                raise IptablesSaveError(no, line, f"table {tname} is not closed with COMMIT", source)
            tname = line[1:]
            if tname not in TABLES:
                raise IptablesSaveError(no, line, "unsupported table (kslib models raw, mangle, nat, filter)",
                                        source)
            table = rs.tables.setdefault(tname, {})
            continue
        if table is None:
            raise IptablesSaveError(no, line.split(" ")[0], "line outside a table (expected *filter, *nat...)", source)
        if line == "COMMIT":
            _parse_pending(rs, tname, pending, user_chains[tname], source)
            table, pending, pending_chains = None, [], Counter()
            continue
        if line.startswith(":"):
            parts = [t for t in _BLANKS.split(line[1:]) if t]
            if len(parts) < 2:
                raise IptablesSaveError(no, line, "a chain line needs a policy or -", source)
            name, policy = parts[0], parts[1]
            if name in BUILTIN_CHAINS[tname]:
                if policy not in ("ACCEPT", "DROP"):
                    raise IptablesSaveError(no, policy, "a built-in chain's policy must be ACCEPT or DROP", source)
            elif policy != "-":
                raise IptablesSaveError(no, policy, "a user chain has no policy (write -)", source)
            table[name] = Chain(name, policy if name in BUILTIN_CHAINS[tname] else None)
            if name not in BUILTIN_CHAINS[tname]:
                user_chains[tname].add(name)
            continue
        head = [t for t in _BLANKS.split(line, 2) if t]
        if head[0] in ("-X", "--delete-chain"):
            if len(head) > 1 and head[1] in table:
                if table[head[1]].rules or pending_chains[head[1]]:
                    raise IptablesSaveError(no, head[1], f"CHAIN_DEL failed: chain {head[1]} is not empty", source)
                del table[head[1]]
                user_chains[tname].discard(head[1])
            continue
        if head[0] not in ("-A", "--append") or len(head) < 2:
            raise IptablesSaveError(no, head[0], "expected -A CHAIN, :CHAIN, COMMIT or *table", source)
        if head[1] not in table:
            if head[1] not in BUILTIN_CHAINS[tname]:
                raise IptablesSaveError(no, head[1], f"chain {head[1]} is not declared in table {tname}", source)
            table[head[1]] = Chain(head[1], "ACCEPT")
        pending.append((head[1], no, line))
        pending_chains[head[1]] += 1
    if table is not None:
        raise IptablesSaveError(len(lines), f"*{tname}", f"table {tname} is not closed with COMMIT", source)
    return rs


def _parse_pending(rs: Ruleset, tname: str, pending, user_chains: set[str], source: str) -> None:
    table = rs.tables[tname]
    for chain, no, line in pending:
        table[chain].rules.append(parse_rule(tname, no, line, user_chains, source))
