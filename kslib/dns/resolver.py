"""The stub resolver in a Pod's C library: which names it asks, in which order, for one lookup.

Let dots = the number of '.' in the name as typed.

glibc (resolv/res_query.c __res_context_search), the default:
- a trailing dot: the name as-is, once, nothing else;
- dots >= ndots: the name as-is first, then each search domain;
- dots < ndots: each search domain, then the name as-is (skipped for a single label when the
  ``no-tld-query`` option is set);
- it goes on past NXDOMAIN and NODATA and stops at the first reply with answers; when all fail it
  reports the as-is reply if that went first, else NODATA if any candidate gave it, else the last.
musl (src/network/lookup_name.c name_from_dns_search, resolvconf.c):
- dots >= ndots or a trailing dot: only the name as-is, never the search list;
- otherwise each search domain, then the name as-is;
- it goes on only past NXDOMAIN: a NODATA ends the lookup there;
- it reads resolv.conf through a 256-byte line buffer and ignores longer lines, so a search
  line over 254 characters is lost entirely.
Both cap ndots at 15, and both send A and AAAA for every candidate when an application calls
``getaddrinfo(AF_UNSPEC)`` (what connecting by name does); a candidate succeeds if either reply
has answers. A candidate name longer than 253 characters cannot be sent: musl skips it, glibc
stops searching there.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

from ..api.errors import not_supported
from . import names
from .message import NOERROR, NXDOMAIN, Answer, Record
from .resolvconf import ResolvConf

LIBCS = ("glibc", "musl")
MUSL_MAX_LINE = 254


class Query(NamedTuple):
    name: str       # fully qualified, trailing dot
    qtype: str


@dataclass
class _Attempt:
    candidate: str
    replies: list[Answer]
    status: str          # "answer" | "NXDOMAIN" | "NODATA"

    @property
    def answered(self) -> bool:
        return self.status == "answer"


@dataclass
class Resolution:
    """One lookup: ``queries`` every (name, qtype) sent, in order, with ``responses`` the replies;
    ``name`` the candidate that answered (None if none did), ``rcode`` ("NOERROR" with no
    answers is NODATA), ``answers`` the answer data (IPs, and the CNAME target of an
    ExternalName), ``count`` the number of queries the lookup cost."""
    input: str
    libc: str
    nameserver: str
    resolv_conf: ResolvConf
    queries: list[Query] = field(default_factory=list)
    responses: list[Answer] = field(default_factory=list)
    name: str | None = None
    rcode: str = NXDOMAIN
    answers: list[str] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.queries)

    @property
    def by_status(self) -> Counter:
        """Replies by NOERROR / NODATA / NXDOMAIN: where the queries of this lookup went."""
        return Counter(r.status for r in self.responses)

    @property
    def addresses(self) -> list[str]:
        return [a for a in self.answers if names.is_ip(a)]

    def __str__(self) -> str:
        dots, ndots = self.input.count("."), self.resolv_conf.ndots
        how = ("trailing dot: as-is only" if self.input.endswith(".")
               else f"dots {dots} {'>=' if dots >= ndots else '<'} ndots {ndots}")
        lines = [f"{self.libc} resolving {self.input!r} ({how}) via nameserver {self.nameserver}"]
        lines += [f"  {q.qtype:<5} {q.name:<50} {r.status:<8} {' '.join(r.data)}".rstrip()
                  for q, r in zip(self.queries, self.responses)]
        lines += [f"  note: {n}" for n in self.notes]
        result = f"{self.name}: {' '.join(self.answers)}" if self.name else "no answer"
        lines.append(f"-> {self.rcode if self.name or self.rcode == NXDOMAIN else 'NODATA'} {result} "
                     f"({self.count} queries)")
        return "\n".join(lines)


def resolve(name: str, conf: ResolvConf, ask, qtypes: tuple[str, ...] = ("A", "AAAA"), libc: str = "glibc",
            nameserver: str = "") -> Resolution:
    """Walk ``conf`` for ``name`` (validated, lowercase) asking ``ask(fqdn, qtype) -> Answer``
    each of ``qtypes`` per candidate."""
    if libc not in LIBCS:
        raise ValueError(str(not_supported("libc", libc, list(LIBCS))))
    res = Resolution(name, libc, nameserver, conf)

    def attempt(candidate: str) -> _Attempt:
        replies = [ask(candidate, t) for t in qtypes]
        res.queries += [Query(candidate, t) for t in qtypes]
        res.responses += replies
        return _Attempt(candidate, replies, _status(replies, libc))

    final = _glibc(name, conf, attempt) if libc == "glibc" else _musl(name, conf, attempt, res.notes)
    if final.answered:
        res.name, res.rcode = final.candidate, NOERROR
        res.records = [r for reply in final.replies for r in reply.answer]
        res.answers = list(dict.fromkeys(r.data for r in res.records))
    else:
        res.rcode = NXDOMAIN if final.status == NXDOMAIN else NOERROR
    return res


def _status(replies: list[Answer], libc: str) -> str:
    if libc == "musl" and any(r.rcode == NXDOMAIN for r in replies):
        return NXDOMAIN          # name_from_dns checks every reply's rcode before any answer
    if any(r.answer for r in replies):
        return "answer"
    # res_query.c: an A reply without answers defers to the AAAA reply's rcode
    reply = replies[1] if len(replies) > 1 and replies[0].nodata else replies[0]
    return reply.status


def _glibc(name: str, conf: ResolvConf, attempt) -> _Attempt:
    if name.endswith("."):
        return attempt(name)
    dots, as_is = name.count("."), name + "."
    first = None
    if dots >= conf.ndots:
        first = attempt(as_is)
        if first.answered:
            return first
    tried = []
    for domain in conf.searches:
        candidate = f"{name}.{domain}."
        if len(candidate) - 1 > names.MAX_NAME:
            break                # res_mkquery cannot encode it: the search stops here
        a = attempt(candidate)
        if a.answered:
            return a
        tried.append(a)
    if first is None and not (dots == 0 and tried and conf.has_option("no-tld-query")):
        a = attempt(as_is)
        if a.answered:
            return a
        tried.append(a)
    if first is not None:
        return first
    return next((a for a in tried if a.status == "NODATA"), tried[-1])


def _musl(name: str, conf: ResolvConf, attempt, notes: list[str]) -> _Attempt:
    searches = conf.searches
    if searches and len("search " + " ".join(searches)) > MUSL_MAX_LINE:
        notes.append(f"musl ignores the search line: {len('search ' + ' '.join(searches))} characters "
                     f"is more than its {MUSL_MAX_LINE}-character line buffer holds")
        searches = ()
    if name.count(".") >= conf.ndots or name.endswith("."):
        searches = ()
    for domain in searches:
        candidate = f"{name}.{domain}."
        if len(candidate) - 1 > names.MAX_NAME:
            continue
        a = attempt(candidate)
        if a.status != NXDOMAIN:
            return a             # an answer, or NODATA: either ends the lookup
    return attempt(name if name.endswith(".") else name + ".")
