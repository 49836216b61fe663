"""The hot wire path: parse a query without dnspython, and render a cached answer per query.

Why not cache final bytes: stored response bytes would freeze the random order (and, with the
3-answer UDP cap, the random *subset*) of a service's instances until the catalog changes,
while Consul shuffles afresh for every query (docs/compat/dns.md#answers).  So the cache holds a :class:`Compiled`
answer - the record set with every record already in wire format - and :func:`render`
shuffles, truncates and concatenates those fragments per query ("cache the record set, shuffle
on the way out").  Measured in-process (100 services x 3 instances, ``handle()`` per query, CPU
time): a miss - parse, store lookup, dnspython rdata, compile - costs ~85 us for A and ~120 us
for SRV; a hit ~7-8 us, about half of it in :func:`render` (shuffle, trim, join): the price of
a fresh order per query over copying one stored buffer.  ``bench/dns_bench.py`` measures the
difference end to end over real sockets.

How the fragments stay valid in any order: every name inside a fragment is compressed *only*
against the question name, which always sits at offset 12 of a response (we echo the asker's
question first), so no fragment ever points into another fragment (:class:`_Compressor`).  The
cache key uses the lowercased question name; the asker's question is copied verbatim into each
response (its labels have the same lengths as the lowercase key), so pointers into it stay
valid and 0x20-randomising resolvers get their own case back.

A compiled answer does not depend on the transport or on EDNS: truncation (UDP 512 bytes /
``min(udp_answer_limit, 8)`` answers without EDNS, the advertised size with EDNS, 64 KiB on
TCP) and the OPT record are applied in :func:`render`.  The cache key is therefore just
(lowercase name, type, class): one entry serves UDP, TCP and every EDNS size, which is the
"(name, type, class, EDNS size bucket, transport)" key of the design with the last two parts
made unnecessary.
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass, field

import dns.name
import dns.rdata
import dns.rdatatype

from ..runtime import Rng
from .answers import Answer, Record, Unit

_HEADER = struct.Struct("!6H")
_RR_FIXED = struct.Struct("!HHIH")
OPT_TYPE = 41
ECS_CODE = 8
MAX_EDNS_UDP = 65467  # largest UDP payload a DNS message may use here (docs/compat/dns.md#truncation-and-edns)
MAX_TCP = 65535
PLAIN_UDP = 512
MAX_UDP_ANSWERS = 8  # Consul's hard cap for non-EDNS UDP answers

FLAG_QR = 0x8000
FLAG_AA = 0x0400
FLAG_TC = 0x0200
FLAG_RD = 0x0100
FLAG_RA = 0x0080


@dataclass(slots=True)
class Query:
    """A parsed one-question query.  ``question`` is the question section exactly as received."""

    id: int
    flags: int
    question: bytes
    qname_lower: bytes
    qtype: int
    qclass: int
    edns: bool = False
    payload: int = 0
    edns_version: int = 0
    ecs: bytes | None = None

    @property
    def key(self) -> tuple[bytes, int, int]:
        return (self.qname_lower, self.qtype, self.qclass)


def parse_query(data: bytes) -> Query | None:
    """Fast parser for the common shape: a QUERY with one question, no answer/authority records
    and at most an OPT record.  Returns None for anything else (the caller then parses with
    dnspython, which also decides FORMERR)."""
    n = len(data)
    if n < 17:
        return None
    qid, flags, qd, an, ns, ar = _HEADER.unpack_from(data)
    if flags & 0xF800 or qd != 1 or an or ns or ar > 1:  # QR set, or opcode != QUERY
        return None
    pos = 12
    while True:
        if pos >= n:
            return None
        ln = data[pos]
        if ln == 0:
            pos += 1
            break
        if ln & 0xC0:
            return None
        pos += ln + 1
        if pos - 12 > 255:
            return None
    if pos + 4 > n:
        return None
    qtype, qclass = struct.unpack_from("!HH", data, pos)
    qend = pos + 4
    q = Query(qid, flags, data[12:qend], data[12:pos].lower(), qtype, qclass)
    if ar == 0:
        return q if qend == n else None
    # OPT: root name, type 41, class = payload, ttl = ext-rcode/version/flags, rdata = options.
    if qend + 11 > n or data[qend] != 0:
        return None
    rtype, payload, ttl, rdlen = _RR_FIXED.unpack_from(data, qend + 1)
    if rtype != OPT_TYPE or qend + 11 + rdlen != n:
        return None
    q.edns, q.payload, q.edns_version = True, payload, (ttl >> 16) & 0xFF
    p, end = qend + 11, n
    while p < end:
        if p + 4 > end:
            return None
        code, olen = struct.unpack_from("!HH", data, p)
        p += 4
        if p + olen > end:
            return None
        if code == ECS_CODE:
            if olen < 4:
                return None
            # Echo the client subnet with scope 0: the answer does not depend on it.
            q.ecs = data[p : p + 3] + b"\x00" + data[p + 4 : p + olen]
        p += olen  # other options (COOKIE, ...) are ignored, as RFC 7873 allows
    return q


def opt_record(payload: int, ext_rcode: int = 0, ecs: bytes | None = None) -> bytes:
    rdata = b"" if ecs is None else struct.pack("!HH", ECS_CODE, len(ecs)) + ecs
    return b"\x00" + _RR_FIXED.pack(OPT_TYPE, payload, (ext_rcode & 0xFF) << 24, len(rdata)) + rdata


# ---------------------------------------------------------------------- compiled answers


class _Compressor:
    """Writes records with every name compressed *only* against the question name (see the
    module doc).  ``table`` maps each lowercase wire suffix of the question to its offset.

    Done by hand rather than with dnspython's compression table: dnspython builds a ``Name``
    object per label per name written, which made compiling an answer ~10x slower."""

    def __init__(self, qname_lower: bytes, enabled: bool) -> None:
        self.table: dict[bytes, int] = {}
        if enabled:
            pos = 0
            while qname_lower[pos]:
                self.table[qname_lower[pos:]] = 12 + pos
                pos += qname_lower[pos] + 1

    def name(self, wire: bytes) -> bytes:
        if not self.table:
            return wire
        low = wire.lower()  # label lengths are < 64, so only label bytes A-Z change
        pos = 0
        while wire[pos]:
            off = self.table.get(low[pos:])
            if off is not None:
                return wire[:pos] + struct.pack("!H", 0xC000 | off)
            pos += wire[pos] + 1
        return wire

    def record(self, rec: Record) -> Frag:
        name, ttl, rd = rec
        owner = _name_wire(name)
        raw = _rdata_wire(rd)
        t = rd.rdtype
        if t in _ONE_NAME:  # CNAME, NS, PTR: the target may be compressed (RFC 1035)
            data = self.name(_name_wire(rd.target))  # type: ignore[attr-defined]
        elif t == dns.rdatatype.SOA:
            data = (
                self.name(rd.mname.to_wire() or b"")  # type: ignore[attr-defined]
                + self.name(rd.rname.to_wire() or b"")  # type: ignore[attr-defined]
                + raw[-20:]
            )
        else:  # A, AAAA, TXT; SRV targets must not be compressed (RFC 2782)
            data = raw
        wire = self.name(owner) + _RR_FIXED.pack(t, rd.rdclass, ttl, len(data)) + data
        return (wire, 1, (len(wire), len(owner) + 10 + len(raw)))


_NAME_WIRE: dict[tuple[bytes, ...], bytes] = {}
_RDATA_WIRE: dict[int, tuple[dns.rdata.Rdata, bytes]] = {}
_MEMO_MAX = 65536


def _name_wire(name: dns.name.Name) -> bytes:
    """Uncompressed wire form, memoised by exact labels (case preserved)."""
    w = _NAME_WIRE.get(name.labels)
    if w is None:
        if len(_NAME_WIRE) >= _MEMO_MAX:
            _NAME_WIRE.clear()
        w = _NAME_WIRE[name.labels] = name.to_wire() or b""
    return w


def _rdata_wire(rd: dns.rdata.Rdata) -> bytes:
    """Uncompressed rdata, memoised by object identity: the answers module reuses rdata objects
    (see ``answers.a_rdata``), and the memo holds a reference, so an id is never reused while
    its entry exists.  Hashing rdata by value would cost as much as serialising it."""
    hit = _RDATA_WIRE.get(id(rd))
    if hit is not None and hit[0] is rd:
        return hit[1]
    if len(_RDATA_WIRE) >= _MEMO_MAX:
        _RDATA_WIRE.clear()
    w = rd.to_wire() or b""
    _RDATA_WIRE[id(rd)] = (rd, w)
    return w


_ONE_NAME = frozenset({dns.rdatatype.CNAME, dns.rdatatype.NS, dns.rdatatype.PTR})

# A fragment: (wire bytes, record count, (wire length, uncompressed length)).
Frag = tuple[bytes, int, tuple[int, int]]
# A unit: the same for its records, plus its extras.
CUnit = tuple[bytes, int, tuple[int, int], tuple[Frag, ...]]


@dataclass(slots=True)
class Compiled:
    """An :class:`Answer` with every record in wire form; immutable once cached."""

    rcode: int
    authoritative: bool
    forward: bool
    answers: tuple[CUnit, ...]
    shuffle_answer: bool
    answer_cap: int
    authority: tuple[CUnit, ...]
    shuffle_authority: bool
    authority_cap: int
    additional: tuple[Frag, ...]
    size: int = 0  # bytes of wire data held (the cache's memory budget counts this)
    remote: bool = False  # answered asynchronously (dns/remote.py); nothing else is set
    #: Rendered UDP replies minus header ID/RD and question, by (permutation, transport
    #: variant): see ``render``.  A derived memo, bounded by ``MEMO_KEYS`` and counted in
    #: ``size``; written by whichever thread renders first (a dict insert, atomic under the
    #: GIL; two threads racing store the same bytes).
    rendered: dict[tuple[object, ...], tuple[int, int, int, int, bytes]] = field(default_factory=dict)


def compile_answer(ans: Answer, qname_lower: bytes, compress: bool) -> Compiled:
    c = _Compressor(qname_lower, compress)

    def unit(u: Unit) -> CUnit:
        frags = [c.record(r) for r in u.records]
        sizes = (sum(f[2][0] for f in frags), sum(f[2][1] for f in frags))
        return (b"".join(f[0] for f in frags), len(frags), sizes, tuple(c.record(e) for e in u.extras))

    answers = tuple(unit(u) for u in ans.answer)
    authority = tuple(unit(u) for u in ans.authority)
    additional = tuple(c.record(r) for r in ans.additional)
    size = sum(len(u[0]) + sum(len(e[0]) for e in u[3]) for u in answers + authority)
    size += sum(len(f[0]) for f in additional)
    if len(answers) <= MEMO_ANSWERS:
        size += MEMO_KEYS * min(size + 64, MEMO_BODY)  # what the rendered memo may come to hold
    return Compiled(
        rcode=ans.rcode,
        authoritative=ans.authoritative,
        forward=ans.forward,
        answers=answers,
        shuffle_answer=ans.shuffle_answer,
        answer_cap=ans.answer_cap,
        authority=authority,
        shuffle_authority=ans.shuffle_authority,
        authority_cap=ans.authority_cap,
        additional=additional,
        size=size + 200,  # + object overhead, roughly
        remote=ans.remote,
    )


# Every ordering of up to _PERM_MAX items, so that shuffling a small answer costs one random
# draw instead of one per item (most services have a handful of instances).
_PERM_MAX = 6
_PERMS: list[list[tuple[int, ...]]] = [list(itertools.permutations(range(n))) for n in range(_PERM_MAX + 1)]

# The rendered memo (``Compiled.rendered``): answers of up to MEMO_ANSWERS units have at most
# MEMO_ANSWERS! orders, so every reply a UDP client can get is one of a few byte strings; those
# are kept (at most MEMO_KEYS per entry, each at most MEMO_BODY bytes) and a hit costs one
# random draw, one dict probe and a header.  Measured: ~1.5 us instead of ~6 us (3 answers).
MEMO_ANSWERS = 3
MEMO_KEYS = 12
MEMO_BODY = 1232


def _pick(items: tuple[CUnit, ...], shuffle: bool, cap: int, want: int, rng: Rng) -> list[CUnit] | tuple[CUnit, ...]:
    """The first ``min(want, cap or all)`` of ``items``, in a uniformly random order when
    ``shuffle`` (a random permutation for small sets, else a partial Fisher-Yates: O(picked))."""
    n = len(items)
    if cap and cap < want:
        want = cap
    if want > n:
        want = n
    if not shuffle or n < 2:
        return items[:want]
    if n <= _PERM_MAX:
        perms = _PERMS[n]
        perm = perms[rng.randrange(len(perms))]
        return [items[i] for i in perm[:want]]
    pool = list(items)
    for i in range(want):
        j = i + rng.randrange(n - i)
        pool[i], pool[j] = pool[j], pool[i]
    return pool[:want]


def render(
    t: Compiled,
    q: Query,
    rng: Rng,
    *,
    tcp: bool,
    udp_answer_limit: int,
    enable_truncate: bool,
    recursion_available: bool,
) -> bytes:
    """The response bytes for ``q`` (see ``_render_parts`` for the rules).  Small UDP answers
    come from ``t.rendered``: the order is drawn exactly as ``_pick`` draws it (one uniformly
    random permutation), then the reply for that order is looked up, rendered on first use."""
    n = len(t.answers)
    if tcp or n > MEMO_ANSWERS or len(t.authority) > 1:
        flags, an, ns, ar, body = _render_parts(
            t, q, rng, tcp=tcp, udp_answer_limit=udp_answer_limit, enable_truncate=enable_truncate,
            recursion_available=recursion_available,
        )
    else:
        pi = rng.randrange(len(_PERMS[n])) if t.shuffle_answer and n > 1 else 0
        key = (pi, q.edns, q.payload, q.ecs, len(q.question), udp_answer_limit, enable_truncate, recursion_available)
        memo = t.rendered
        got = memo.get(key)
        if got is None:
            got = _render_parts(
                t, q, rng, tcp=False, udp_answer_limit=udp_answer_limit, enable_truncate=enable_truncate,
                recursion_available=recursion_available, perm=_PERMS[n][pi],
            )
            if len(memo) < MEMO_KEYS and len(got[4]) <= MEMO_BODY:
                memo[key] = got
        flags, an, ns, ar, body = got
    return b"".join((_HEADER.pack(q.id, flags | (q.flags & FLAG_RD), 1, an, ns, ar), q.question, body))


def _render_parts(
    t: Compiled,
    q: Query,
    rng: Rng,
    *,
    tcp: bool,
    udp_answer_limit: int,
    enable_truncate: bool,
    recursion_available: bool,
    perm: tuple[int, ...] | None = None,
) -> tuple[int, int, int, int, bytes]:
    """(flags without RD, answer/authority/additional counts, the bytes after the question)
    of ``render``; ``perm`` fixes the answers' order (else drawn from ``rng``).  The response bytes for ``q``: shuffle, cap, trim to the transport's size, re-sync the
    Additional section to the answers kept, add the OPT record when the query had one.

    Size rules (Consul's ``trimUDPResponse``/``trimTCPResponse``): UDP without EDNS (or an
    advertised size <= 512) keeps at most ``min(udp_answer_limit, 8)`` answers and at most 512
    bytes counted *uncompressed*; UDP with EDNS the advertised size (max 65467); TCP 64 KiB.
    Authority is dropped before answers; the first answer is always kept (even if it alone is
    too big, as Consul does), its extras only if they fit.  TC is set only if answers were
    trimmed and ``enable_truncate`` is on.
    """
    opt = opt_record(max(q.payload, PLAIN_UDP), t.rcode >> 4, q.ecs) if q.edns else b""
    n_answers = len(t.answers)
    if tcp:
        limit, cap, si = MAX_TCP, n_answers, 0
    elif q.edns and q.payload > PLAIN_UDP:
        limit, cap, si = min(q.payload, MAX_EDNS_UDP), n_answers, 0
    else:  # sizes counted uncompressed (si = 1), as Consul does for plain UDP
        limit, cap, si = PLAIN_UDP, min(udp_answer_limit, MAX_UDP_ANSWERS), 1

    available = min(n_answers, t.answer_cap) if t.answer_cap else n_answers
    if perm is None:
        ordered = _pick(t.answers, t.shuffle_answer, t.answer_cap, cap, rng)
    else:
        want = min(cap, t.answer_cap, n_answers) if t.answer_cap else min(cap, n_answers)
        ordered = [t.answers[i] for i in perm[:want]]
    authority = _pick(t.authority, t.shuffle_authority, t.authority_cap, len(t.authority), rng)
    base = 12 + len(q.question) + len(opt)

    # Consul drops the Authority section before it drops answers: try with it, then without.
    for auth in ((authority, ()) if authority else (authority,)):
        total = base
        seen: set[bytes] = set()
        extras: list[bytes] = []
        ns = ar = 0
        for u in auth:
            total += u[2][si]
            ns += u[1]
            for e in u[3]:
                if e[0] not in seen:
                    seen.add(e[0])
                    extras.append(e[0])
                    ar += e[1]
                    total += e[2][si]
        kept: list[bytes] = []
        an = 0
        for u in ordered:
            add = u[2][si]
            new = [e for e in u[3] if e[0] not in seen]
            for e in new:
                add += e[2][si]
            if total + add > limit:
                if kept:
                    break
                new, add = [], u[2][si]
            kept.append(u[0])
            an += u[1]
            for e in new:
                seen.add(e[0])
                extras.append(e[0])
                ar += e[1]
            total += add
        if len(kept) == len(ordered):
            break
    for f in t.additional:
        if total + f[2][si] <= limit:
            extras.append(f[0])
            ar += f[1]
            total += f[2][si]

    flags = FLAG_QR | (t.rcode & 0xF)
    if t.authoritative:
        flags |= FLAG_AA
    if recursion_available:
        flags |= FLAG_RA
    if enable_truncate and len(kept) < available:
        flags |= FLAG_TC
    if opt:
        ar += 1
    return flags, an, ns, ar, b"".join((*kept, *(u[0] for u in auth), *extras, opt))


def header_reply(qid: int, qflags: int, rcode: int, question: bytes = b"", opt: bool = False) -> bytes:
    """A records-less response (FORMERR, NOTIMP, SERVFAIL, BADVERS): the query's ID, opcode and
    RD, QR set, the question echoed if given; an OPT record when asked or the rcode needs one."""
    out_flags = FLAG_QR | (qflags & 0x7800) | (qflags & FLAG_RD) | (rcode & 0xF)
    ext = opt_record(PLAIN_UDP, rcode >> 4) if opt or rcode > 0xF else b""
    return _HEADER.pack(qid, out_flags, 1 if question else 0, 0, 0, 1 if ext else 0) + question + ext


def error_response(data: bytes, rcode: int) -> bytes:
    """:func:`header_reply` for a packet of which only the 12-byte header is trusted."""
    qid, flags = struct.unpack_from("!HH", data)
    return header_reply(qid, flags, rcode)


def truncated_reply(q: Query, rcode: int, recursion_available: bool) -> bytes:
    """Header and question only, TC set: the client must retry over TCP."""
    flags = FLAG_QR | FLAG_TC | (q.flags & FLAG_RD) | (rcode & 0xF)
    if recursion_available:
        flags |= FLAG_RA
    opt = opt_record(max(q.payload, PLAIN_UDP), rcode >> 4, q.ecs) if q.edns else b""
    return _HEADER.pack(q.id, flags, 1, 0, 0, 1 if opt else 0) + q.question + opt


def rcode_of(reply: bytes) -> int:
    return struct.unpack_from("!H", reply, 2)[0] & 0xF


def max_udp_reply(q: Query) -> int:
    return min(max(q.payload, PLAIN_UDP), MAX_EDNS_UDP) if q.edns else PLAIN_UDP
