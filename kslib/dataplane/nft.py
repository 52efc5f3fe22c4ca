"""nftables rulesets as text: the parser for ``nft list ruleset`` output (and ``nft -f`` input in that form).

It reads kslib's own nftables ``render()`` and a real node's listing alike: kube-proxy's spelling
(``mark set mark or 0x4000``, ``dnat to 10.0.0.1:80``) and the kernel's normalised one
(``meta mark set meta mark | 0x00004000``, ``dnat ip to 10.0.0.1:80``). Rules become the same
``Rule``/``Match`` objects as iptables rules, so one compiler and one engine run both; sets and maps
keep their elements. What the engine cannot execute is refused with the line and the token
(``NftError``), never half-understood.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from .rules import PROTOCOLS, Chain, Match, Rule

# priority names for the ip family (nft(8) "PRIORITY" table)
PRIORITY_NAMES = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100}
HOOKS = {"prerouting": "PREROUTING", "input": "INPUT", "forward": "FORWARD", "output": "OUTPUT",
         "postrouting": "POSTROUTING"}
KEY_TYPES = {"ipv4_addr": "addr", "inet_proto": "proto", "inet_service": "port", "ifname": None}
SELECTORS = {("ip", "saddr"): "ip saddr", ("ip", "daddr"): "ip daddr", ("meta", "l4proto"): "meta l4proto",
             ("th", "dport"): "th dport", ("th", "sport"): "th sport", ("tcp", "dport"): "th dport",
             ("udp", "dport"): "th dport", ("sctp", "dport"): "th dport", ("tcp", "sport"): "th sport",
             ("udp", "sport"): "th sport", ("sctp", "sport"): "th sport", ("ip", "protocol"): "meta l4proto"}
CT_STATES = {"new": "NEW", "established": "ESTABLISHED", "related": "RELATED", "invalid": "INVALID",
             "untracked": "UNTRACKED"}
# nft's scanner separates words at spaces and tabs only (scanner.l: space, tab, newline)
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|!=|==|[{},;]|[^ \t{},;]+')
_DURATION = re.compile(r"([0-9]+)(d|h|ms|m|s)")
MAX_NUMGEN_MOD = 1 << 20


class NftError(ValueError):
    """A line the parser cannot read or the engine cannot execute: names the line and the token."""

    def __init__(self, line_no: int, token: str, message: str, source: str = "<nft>"):
        self.line_no, self.token, self.source = line_no, token, source
        super().__init__(f"{source} line {line_no}: {message} (at {token!r})")


@dataclass
class NftSet:
    """A named set or map: its key (selector kinds), elements and, for dynamic sets, the timeout."""
    name: str
    key: tuple[str, ...]                 # "addr" | "proto" | "port" per concatenated part
    is_map: bool = False
    flags: tuple[str, ...] = ()
    timeout: float | None = None
    interval: bool = False
    elements: list[tuple[tuple, tuple | None]] = field(default_factory=list)   # (key ints, (verdict, chain))


@dataclass
class NftRuleset:
    """One table: its chains (base chains carry hook, priority and type) and sets."""
    family: str = "ip"
    name: str = ""
    chains: dict[str, Chain] = field(default_factory=dict)
    base: dict[str, tuple[str, int, str]] = field(default_factory=dict)   # chain -> (HOOK, priority, type)
    sets: dict[str, NftSet] = field(default_factory=dict)

    def rules(self):
        for chain in self.chains.values():
            yield from chain.rules

    def __len__(self) -> int:
        return sum(len(c.rules) for c in self.chains.values())


def duration(text: str) -> float:
    """``3h``, ``10800s``, ``1d2h3m4s``, ``500ms`` -> seconds."""
    parts = _DURATION.findall(text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise ValueError(f"not a duration: {text}")
    if any(len(a) > 8 for a, _ in parts):
        raise ValueError("value too large")          # nft's time_parse: at most 8 digits a unit
    unit = {"d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(int(a) * unit[b] for a, b in parts)


def number(text: str, hi: int, what: str) -> int:
    """An unsigned number as nft's scanner reads it (decimal or 0x hex), at most ``hi``."""
    if not re.fullmatch(r"0[xX][0-9a-fA-F]{1,20}|[0-9]{1,20}", text):
        raise ValueError(f"{what} must be a number")
    v = int(text, 16) if text[:2] in ("0x", "0X") else int(text)
    if v > hi:
        raise ValueError(f"Value {v} exceeds valid range 0-{hi}")
    return v


def _cidr(text: str) -> tuple[int, int]:
    net = ipaddress.IPv4Network(text, strict=False)
    return int(net.network_address), net.prefixlen


class _Tokens:
    def __init__(self, text: str, source: str):
        self.toks: list[tuple[str, int]] = []
        self.source = source
        # lines end at newline characters only, as nft's scanner counts them (a \r before one is dropped)
        for no, line in enumerate(text.split("\n"), start=1):
            line = line.removesuffix("\r")
            if line.lstrip(" \t").startswith("#"):
                continue
            self.toks.extend((t, no) for t in _TOKEN.findall(line))
            self.toks.append(("\n", no))
        self.i = 0
        self.refs: list[tuple[str, str, int]] = []     # (which map, chain a verdict names, line)

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.toks[j][0] if j < len(self.toks) else ""

    @property
    def line(self) -> int:
        """The line of the token read last (the one a failure is about)."""
        return self.toks[min(max(self.i - 1, 0), len(self.toks) - 1)][1] if self.toks else 0

    def next(self) -> str:
        if self.i >= len(self.toks):
            self.fail("<end>", "unexpected end of input")
        t = self.toks[self.i][0]
        self.i += 1
        return t

    def expect(self, tok: str) -> None:
        t = self.next()
        if t != tok:
            self.fail(t, f"expected {tok!r}")

    def skip_newlines(self) -> None:
        while self.peek() == "\n" or self.peek() == ";":
            self.i += 1

    def fail(self, tok: str, message: str, line: int | None = None):
        raise NftError(self.line if line is None else line, tok, message, self.source)


def parse(text: str, source: str = "<nft>") -> NftRuleset:
    """Parse ``nft list ruleset`` text holding one ``table ip ...`` (kube-proxy's)."""
    tk = _Tokens(text, source)
    rs: NftRuleset | None = None
    tk.skip_newlines()
    while tk.peek():
        if tk.next() != "table":
            tk.fail(tk.toks[tk.i - 1][0], "expected 'table'")
        family, name = tk.next(), tk.next()
        if family != "ip":
            tk.fail(family, "kslib models IPv4 tables (family ip)")
        if rs is not None:
            tk.fail(name, "kslib reads one table per node (kube-proxy's)")
        rs = NftRuleset(family, name)
        tk.expect("{")
        _table_body(tk, rs)
        tk.skip_newlines()
    rs = rs if rs is not None else NftRuleset()        # (a table without rules has len 0)
    _check_references(tk, rs)
    return rs


def _table_body(tk: _Tokens, rs: NftRuleset) -> None:
    pending: list[tuple[str, int, list[str]]] = []
    while True:
        tk.skip_newlines()
        t = tk.next()
        if t == "}":
            break
        if t in ("comment", "flags"):
            tk.next()
        elif t in ("set", "map"):
            s = _set(tk, tk.next(), t == "map")
            rs.sets[s.name] = s
        elif t == "chain":
            name = tk.next()
            tk.expect("{")
            rs.chains[name] = Chain(name, None)
            pending.extend(_chain_body(tk, rs, name))
        else:
            tk.fail(t, "expected set, map, chain or comment")
    for chain, toks, lines in pending:
        rs.chains[chain].rules.append(_rule(chain, toks, lines, rs, tk))


def _set(tk: _Tokens, name: str, is_map: bool) -> NftSet:
    s = NftSet(name, (), is_map)
    tk.expect("{")
    while True:
        tk.skip_newlines()
        t = tk.next()
        if t == "}":
            return s
        if t == "type":
            key = []
            while True:
                k = tk.next()
                if k not in KEY_TYPES or KEY_TYPES[k] is None:
                    tk.fail(k, "unsupported set key type (kslib keys on ipv4_addr, inet_proto, inet_service)")
                key.append(KEY_TYPES[k])
                if tk.peek() != ".":
                    break
                tk.next()
            s.key = tuple(key)
            if is_map:
                tk.expect(":")
                if tk.next() != "verdict":
                    tk.fail(tk.toks[tk.i - 1][0], "kslib models verdict maps only")
        elif t == "flags":
            flags = []
            while tk.peek() not in ("\n", ";", ""):
                flags.extend(f for f in tk.next().split(",") if f)
                if tk.peek() == ",":
                    tk.next()
            s.flags = tuple(flags)
            s.interval = "interval" in flags
        elif t == "timeout":
            v = tk.next()
            try:
                s.timeout = duration(v)
            except ValueError as e:
                tk.fail(v, str(e))
        elif t in ("comment", "size", "policy", "gc-interval"):
            tk.next()
        elif t == "elements":
            tk.expect("=")
            tk.expect("{")
            s.elements.extend(_elements(tk, s))
        else:
            tk.fail(t, "unexpected in a set")


def _elements(tk: _Tokens, s: NftSet) -> list:
    out, parts, value, line = [], [], None, 0
    while True:
        t = tk.next()
        if t == "\n":
            continue
        if t in (",", "}"):
            if parts:
                out.append((_key(tk, s, parts, line), value))
            parts, value = [], None
            if t == "}":
                return out
        elif t == "comment" or t in ("timeout", "expires"):
            tk.next()
        elif t == ":" and s.is_map:
            word = tk.next()
            value = _verdict(word, tk.next() if word in ("jump", "goto") else None, tk.fail)
            if value[1] is not None:
                tk.refs.append((f"map {s.name}", value[1], tk.toks[tk.i - 1][1]))
        else:
            if not parts:
                line = tk.toks[tk.i - 1][1]       # an element's errors name the line it starts on
            parts.append(t)


def _key(tk: _Tokens, s: NftSet, parts: list[str], line: int) -> tuple:
    vals = [p for k, p in enumerate(parts) if k % 2 == 0]
    if len(vals) != len(s.key) or any(p != "." for k, p in enumerate(parts) if k % 2 == 1):
        tk.fail(" ".join(parts), f"element does not match the set's key ({' . '.join(s.key)})", line)
    return tuple(_value(tk, kind, v, s.interval, line) for kind, v in zip(s.key, vals))


def _value(tk: _Tokens, kind: str, v: str, interval: bool = False, line: int | None = None):
    try:
        if kind == "addr":
            return _cidr(v) if interval or "/" in v else int(ipaddress.IPv4Address(v))
        if kind == "proto":
            return PROTOCOLS[v] if v in PROTOCOLS else number(v, 255, "a protocol")
        return number(v, 65535, "a port")
    except (ValueError, KeyError):
        tk.fail(v, f"not a valid {kind}", line)


def _verdict(word: str, target: str | None, fail) -> tuple[str, str | None]:
    """A map value: (verdict, chain for jump/goto)."""
    if word not in ("jump", "goto", "accept", "drop", "reject", "return", "continue"):
        fail(word, "not a verdict")
    return word, target


def _chain_body(tk: _Tokens, rs: NftRuleset, name: str) -> list:
    rules = []
    while True:
        tk.skip_newlines()
        if tk.peek() == "":
            tk.fail("<end>", f"chain {name} is not closed with }}")
        if tk.peek() == "}":
            tk.next()
            return rules
        if tk.peek() == "type":
            tk.next()
            ctype, _, hook = tk.next(), tk.expect("hook"), tk.next()
            if hook not in HOOKS:
                tk.fail(hook, "unsupported hook")
            if ctype not in ("filter", "nat"):
                tk.fail(ctype, "kslib models filter and nat chains")
            tk.expect("priority")
            prio_toks = []
            while tk.peek() not in (";", "\n"):
                prio_toks.append(tk.next())
            rs.base[name] = (HOOKS[hook], _priority(tk, prio_toks), ctype)
            rs.chains[name].policy = "ACCEPT"
            continue
        if tk.peek() == "policy":
            tk.next()
            p = tk.next()
            if p not in ("accept", "drop"):
                tk.fail(p, "a chain policy is accept or drop")
            rs.chains[name].policy = p.upper()
            continue
        if tk.peek() == "comment" and tk.peek(2) == "\n":
            tk.next(), tk.next()
            continue
        toks, lines = [], []                    # a rule may span lines inside { }
        depth = 0
        while True:
            t = tk.peek()
            if t == "" or (t == "\n" and depth == 0) or (t == "}" and depth == 0):
                break
            tk.next()
            if t == "\n":
                continue
            depth += (t == "{") - (t == "}")
            toks.append(t)
            lines.append(tk.line)
        rules.append((name, toks, lines))


def _priority(tk: _Tokens, toks: list[str]) -> int:
    text = " ".join(toks)
    m = re.fullmatch(r"(-?[0-9]{1,10}|[a-z]+)(?: ?([+-]) ?([0-9]{1,10}))?", text)
    if not m or (not m.group(1).lstrip("-").isdigit() and m.group(1) not in PRIORITY_NAMES):
        tk.fail(text or "<end>", "unknown chain priority")
    base = int(m.group(1)) if m.group(1).lstrip("-").isdigit() else PRIORITY_NAMES[m.group(1)]
    if m.group(2):
        base += int(m.group(3)) * (1 if m.group(2) == "+" else -1)
    if not -2**31 <= base < 2**31:
        tk.fail(text, "priority out of range (a 32-bit signed integer)")
    return base


# ---- rules ---------------------------------------------------------------------------------------------
def _rule(chain: str, toks: list[str], lines: list[int], rs: NftRuleset, tk: _Tokens) -> Rule:
    """One rule from its tokens and the line each token is on (the rule's line is its first)."""
    text = " ".join(toks)
    rule = Rule("nft", chain, lines[0], text)
    i = 0

    def line_of(tok) -> int:
        """The line of the token a failure names: where it was last read (else the rule's first line)."""
        for j in range(min(i, len(toks)) - 1, -1, -1):
            if toks[j] == tok:
                return lines[j]
        return lines[0]

    def fail(tok, message):
        raise NftError(line_of(tok), tok, message, tk.source)

    def take():
        nonlocal i
        if i >= len(toks):
            fail(text, "the rule ends too early")
        i += 1
        return toks[i - 1]

    def num(tok, hi, what):
        try:
            return number(tok, hi, what)
        except ValueError as e:
            fail(tok, str(e))

    def selector():
        """A packet field selector at toks[i], e.g. ``ip daddr`` -> "ip daddr"."""
        nonlocal i
        key = (toks[i], toks[i + 1]) if i + 1 < len(toks) else None
        if key in SELECTORS:
            i += 2
            if key[0] in ("tcp", "udp", "sctp"):     # "tcp dport" also means "meta l4proto tcp"
                rule.matches.append(Match("proto", False, (PROTOCOLS[key[0]],)))
            return SELECTORS[key]
        return None

    def action(kind: str, **args):
        if rule.target:
            fail(toks[i - 1], "kslib executes one action statement per rule")
        rule.target = kind
        rule.target_args = args

    def set_ref(name: str) -> NftSet:
        s = rs.sets.get(name[1:])
        if s is None:
            fail(name, f"set {name[1:]} is not declared in the table")
        return s

    while i < len(toks):
        t = toks[i]
        if t == "counter":
            i += 1
            while i < len(toks) and toks[i] in ("packets", "bytes"):
                i += 2
            continue
        if t == "comment":
            i += 2
            continue
        sel = selector()
        if sel is not None:
            fields = [sel]
            while i < len(toks) and toks[i] == ".":
                i += 1
                nxt = selector()
                if nxt is None:
                    fail(toks[i] if i < len(toks) else text, "expected a field after '.'")
                fields.append(nxt)
            op = "=="
            if i < len(toks) and toks[i] in ("!=", "=="):
                op = take()
            if i >= len(toks):
                fail(text, "a match needs a value")
            if toks[i] == "vmap":
                i += 1
                ref = take()
                if not ref.startswith("@"):
                    fail(ref, "kslib models verdict maps by name (vmap @map)")
                s = set_ref(ref)
                if not s.is_map or len(s.key) != len(fields):
                    fail(ref, "the map's key does not match the selector")
                action("VMAP", set=s.name, fields=tuple(fields))
                continue
            v = take()
            inv = op == "!="
            if v.startswith("@"):
                s = set_ref(v)
                if s.is_map or len(s.key) != len(fields):
                    fail(v, "the set's key does not match the selector")
                rule.matches.append(Match("set", inv, (s.name, tuple(fields))))
            elif len(fields) > 1:
                fail(v, "a concatenation needs a set or a map")
            elif v == "{":
                items = []
                while True:
                    w = take()
                    if w == "}":
                        break
                    if w != ",":
                        items.append(w)
                f = fields[0]
                if f not in ("ip saddr", "ip daddr"):
                    fail("{", "anonymous sets are modelled for addresses")
                if len(items) == 1:          # nft lists a one-element set as the bare value
                    rule.matches.append(_field_match(f, inv, items[0], fail))
                    continue
                try:
                    rule.matches.append(Match("cidrs", inv, (f, tuple(_cidr(x) for x in items))))
                except ValueError:
                    fail(" ".join(items), "not IPv4 addresses")
            else:
                rule.matches.append(_field_match(fields[0], inv, v, fail))
            continue
        i += 1
        if t == "fib":
            side, typ, kind = take(), take(), take()
            inv = False
            if kind == "!=":
                inv, kind = True, take()
            if side not in ("saddr", "daddr") or typ != "type" or kind != "local":
                fail(t, "kslib models fib saddr|daddr type local")
            rule.matches.append(Match("srctype" if side == "saddr" else "dsttype", inv, ("LOCAL",)))
        elif t == "ct":
            if take() != "state":
                fail(toks[i - 1], "kslib models ct state matches")
            v = take()
            inv = v == "!="
            if inv:
                v = take()
            states = []
            for s in v.split(","):
                if s not in CT_STATES:
                    fail(s, "unknown conntrack state")
                states.append(CT_STATES[s])
            rule.matches.append(Match("ctstate", inv, tuple(states)))
        elif t in ("mark", "meta"):
            if t == "meta" and take() != "mark":
                fail(toks[i - 1], "unsupported meta expression")
            i = _mark_expr(toks, i, rule, fail, action)
        elif t == "numgen":
            if take() != "random" or take() != "mod":
                fail(t, "kslib models numgen random mod N")
            w = take()
            # the kernel takes a 32-bit modulus of at least 1 (nft_ng_random_init: ERANGE); kslib's
            # engine lays the map out as a table of mod entries, so it models mod up to MAX_NUMGEN_MOD
            mod = num(w, MAX_NUMGEN_MOD, "numgen's modulus")
            if mod < 1:
                fail(w, "numgen's modulus must be at least 1")
            if take() != "vmap" or take() != "{":
                fail(t, "numgen needs an anonymous verdict map")
            entries = {}
            while True:
                w = take()
                if w == "}":
                    break
                if w == ",":
                    continue
                if take() != ":":
                    fail(w, "expected KEY : VERDICT")
                word = take()
                target = take() if word in ("jump", "goto") else None
                entries[num(w, 0xFFFFFFFF, "a numgen map key")] = _verdict(word, target, fail)
                if target is not None:                    # checked once every chain is declared
                    tk.refs.append(("a numgen map", target, line_of(target)))
            action("NUMGEN", mod=mod, entries=entries)
        elif t == "update" or t == "add":
            ref = take()
            s = set_ref(ref)
            if take() != "{":
                fail(ref, "expected { key }")
            fields = []
            while i < len(toks) and toks[i] != "}":
                if toks[i] == ".":
                    i += 1
                    continue
                f = selector()
                if f is None:
                    if toks[i] in ("timeout", "expires"):
                        i += 2
                        continue
                    fail(toks[i], "expected a field")
                fields.append(f)
            take()                                        # the closing }
            action("UPDATE", set=s.name, fields=tuple(fields))
        elif t in ("jump", "goto"):
            target = take()
            if target not in rs.chains:
                fail(target, f"{t} to chain {target}, which the table does not declare")
            action(target, goto=t == "goto")
        elif t in ("accept", "drop", "return"):
            action(t.upper())
        elif t == "reject":
            with_ = None
            if i < len(toks) and toks[i] == "with":
                rest = toks[i + 1:i + 4]
                i += 1 + (3 if rest[:1] == ["icmp"] else 2)
                with_ = "tcp-reset" if rest[:2] == ["tcp", "reset"] else "icmp-port-unreachable"
            action("REJECT", **({"with": with_} if with_ else {}))
        elif t == "masquerade":
            flags = set()
            while i < len(toks) and toks[i] in ("fully-random", "random", "persistent", "random-fully"):
                flags.add(take())
            action("MASQUERADE", **{"random-fully": bool(flags & {"fully-random", "random-fully"})})
        elif t == "dnat":
            if i < len(toks) and toks[i] == "ip":
                i += 1
            if take() != "to":
                fail(t, "expected dnat to ADDRESS[:PORT]")
            to = take()
            addr, _, port = to.partition(":")
            try:
                ip = int(ipaddress.IPv4Address(addr))
            except ValueError:
                fail(to, "not an IPv4 address")
            action("DNAT", ip=ip, port=num(port, 65535, "a port") if port else 0)
        else:
            fail(t, "unsupported nft expression")
    if rule.target and rule.target not in ("VMAP", "NUMGEN", "UPDATE", "ACCEPT", "DROP", "RETURN", "REJECT",
                                           "MASQUERADE", "DNAT", "MARK"):
        rule.goto = rule.target_args.pop("goto", False)
    return rule


def _field_match(f: str, inv: bool, v: str, fail) -> Match:
    try:
        if f in ("ip saddr", "ip daddr"):
            return Match("src" if f == "ip saddr" else "dst", inv, _cidr(v))
        if f == "meta l4proto":
            return Match("proto", inv, (PROTOCOLS[v] if v in PROTOCOLS else number(v, 255, "a protocol"),))
        lo, _, hi = v.partition("-")
        lo, hi = number(lo, 65535, "a port"), number(hi or lo, 65535, "a port")
        if lo > hi:
            raise ValueError(f"{v} is not a port range")
        return Match("dport" if f == "th dport" else "sport", inv, (lo, hi))
    except (ValueError, KeyError) as e:
        fail(v, f"not a valid value for {f}: {e}")


_MARK_OPS = {"or": "|", "|": "|", "xor": "^", "^": "^", "and": "&", "&": "&"}


def _mark_expr(toks, i, rule, fail, action) -> int:
    """After ``mark``/``meta mark`` at toks[i]: ``set mark or|xor V`` (an action, also spelled
    ``set meta mark | V``), ``and M [==|!=] V`` / ``& M ...`` or a plain value (matches).
    Returns the index after the expression."""
    def at(k):
        return toks[k] if k < len(toks) else ""
    if at(i) == "set":
        i += 1
        if at(i) == "meta":
            i += 1
        if at(i) != "mark" or at(i + 1) not in _MARK_OPS:
            fail(" ".join(toks[i:]), "kslib models mark set mark or|xor VALUE")
        op, v = _MARK_OPS[at(i + 1)], _mark_value(at(i + 2), fail)
        if op == "|":
            action("MARK", value=v, mask=v)          # (mark & ~v) ^ v == mark | v
        elif op == "^":
            action("MARK", value=v, mask=0)
        else:
            action("MARK", value=0, mask=~v & 0xFFFFFFFF)
        return i + 3
    mask = 0xFFFFFFFF
    if at(i) in _MARK_OPS and _MARK_OPS[at(i)] == "&":
        mask = _mark_value(at(i + 1), fail)
        i += 2
    inv = False
    if at(i) in ("==", "!="):
        inv = at(i) == "!="
        i += 1
    rule.matches.append(Match("mark", inv, (_mark_value(at(i), fail) & mask, mask)))
    return i + 1


def _mark_value(tok: str, fail) -> int:
    """meta mark is 32 bits: nft refuses a larger value ("Value ... exceeds valid range")."""
    try:
        return number(tok, 0xFFFFFFFF, "a mark")
    except ValueError as e:
        fail(tok or "<end>", str(e))


def _check_references(tk: _Tokens, rs: NftRuleset) -> None:
    for which, chain, line in tk.refs:
        if chain not in rs.chains:
            tk.fail(chain, f"{which} points at chain {chain}, which the table does not declare", line)
