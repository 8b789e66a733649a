"""A small authoritative DNS server on loopback, for the demo and the tests.

It serves fixed records over UDP and TCP (with truncation, so large TXT
records take the TCP path as on the internet), answers NXDOMAIN for names
it does not know, follows CNAMEs inside its data, and stays silent for names
marked as timing out. Canary's real resolver queries it like any other
server: nothing bypasses the DNS path.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
from collections.abc import Iterable

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

TTL = 300


class Zones:
    """Records by name and type; names are case-insensitive."""

    def __init__(self) -> None:
        self._records: dict[tuple[dns.name.Name, int], list[dns.rdata.Rdata]] = {}
        self._names: set[dns.name.Name] = set()
        self._timeouts: dict[dns.name.Name, frozenset[int]] = {}
        """Names that never answer, except for the record types listed."""

    @staticmethod
    def _name(text: str) -> dns.name.Name:
        return dns.name.from_text(text.rstrip(".") + ".")

    def _add(self, name: str, rdata: dns.rdata.Rdata) -> None:
        key = self._name(name)
        self._records.setdefault((key, rdata.rdtype), []).append(rdata)
        self._names.add(key)

    def add(self, name: str, rdtype: str, text: str) -> None:
        """Add a record from its presentation form, e.g. ("a.example", "MX", "10 mx.a.example.")."""
        kind = dns.rdatatype.from_text(rdtype)
        self._add(name, dns.rdata.from_text(dns.rdataclass.IN, kind, text))

    def add_txt(self, name: str, *strings: str | bytes, rdtype: str = "TXT") -> None:
        """Add one TXT (or SPF) record made of the given character-strings."""
        parts = [s.encode() if isinstance(s, str) else s for s in strings]
        chunks = [p[i:i + 255] for p in parts for i in range(0, max(len(p), 1), 255)] or [b""]
        wire = b"".join(bytes([len(c)]) + c for c in chunks)
        kind = dns.rdatatype.from_text(rdtype)
        self._add(name, dns.rdata.from_wire(dns.rdataclass.IN, kind, wire, 0, len(wire)))

    def add_timeout(self, name: str, *, answering: tuple[str, ...] = ()) -> None:
        """Never answer questions about `name`, except for the record types in `answering`."""
        self._timeouts[self._name(name)] = frozenset(dns.rdatatype.from_text(t)
                                                     for t in answering)

    def end_timeout(self, name: str | None = None) -> None:
        """Answer questions about `name` again (every name, when None)."""
        if name is None:
            self._timeouts.clear()
        else:
            self._timeouts.pop(self._name(name), None)

    def _silent(self, name: dns.name.Name, rdtype: int) -> bool:
        answering = self._timeouts.get(name)
        return answering is not None and rdtype not in answering

    def exists(self, name: dns.name.Name) -> bool:
        return name in self._names or any(n.is_subdomain(name) for n in self._names)

    def find(self, name: dns.name.Name, rdtype: int) -> list[dns.rdata.Rdata]:
        return self._records.get((name, rdtype), [])

    def answer(self, query: dns.message.Message) -> dns.message.Message | None:
        """The response to `query`, or None to stay silent (a timeout)."""
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        name, rdtype = question.name, question.rdtype
        for _ in range(10):  # follow CNAMEs inside our data
            if self._silent(name, rdtype):
                return None
            found = self.find(name, rdtype)
            if found:
                response.answer.append(_rrset(name, rdtype, found))
                return response
            cname = self.find(name, dns.rdatatype.CNAME)
            if not cname or rdtype == dns.rdatatype.CNAME:
                break
            response.answer.append(_rrset(name, dns.rdatatype.CNAME, cname))
            name = cname[0].target  # type: ignore[attr-defined]
        if not response.answer and not self.exists(name):
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response


def _rrset(
    name: dns.name.Name, rdtype: int, rdatas: Iterable[dns.rdata.Rdata]
) -> dns.rrset.RRset:
    rrset = dns.rrset.RRset(name, dns.rdataclass.IN, dns.rdatatype.RdataType.make(rdtype))
    for rdata in rdatas:
        rrset.add(rdata, TTL)
    return rrset


def _reply(zones: Zones, wire: bytes, limit: int | None) -> bytes | None:
    try:
        query = dns.message.from_wire(wire)
    except dns.exception.DNSException:
        return None
    response = zones.answer(query)
    if response is None:
        return None
    if limit is None:
        return response.to_wire()
    if query.edns >= 0:
        limit = max(512, query.payload)
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        truncated = dns.message.make_response(query)
        truncated.flags |= dns.flags.AA | dns.flags.TC
        return truncated.to_wire()


class _Udp(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        reply = _reply(self.server.zones, data, 512)  # type: ignore[attr-defined]
        if reply is not None:
            sock.sendto(reply, self.client_address)


class _Tcp(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(5)
        try:
            while header := sock.recv(2):
                if len(header) < 2:
                    header += sock.recv(1)
                (length,) = struct.unpack("!H", header)
                data = b""
                while len(data) < length:
                    chunk = sock.recv(length - len(data))
                    if not chunk:
                        return
                    data += chunk
                reply = _reply(self.server.zones, data, None)  # type: ignore[attr-defined]
                if reply is None:
                    return
                sock.sendall(struct.pack("!H", len(reply)) + reply)
        except (OSError, struct.error):
            return


class _UdpServer(socketserver.ThreadingUDPServer):
    daemon_threads = True
    allow_reuse_address = True
    zones: Zones


class _TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    zones: Zones


class ZoneServer:
    """`with ZoneServer(zones) as (host, port): …` serves `zones` on loopback."""

    def __init__(self, zones: Zones, host: str = "127.0.0.1") -> None:
        self.zones = zones
        self._host = host
        self._servers: list[_UdpServer | _TcpServer] = []
        self.port = 0

    def start(self) -> tuple[str, int]:
        for _ in range(20):  # find a port free for both UDP and TCP
            udp = _UdpServer((self._host, 0), _Udp)
            port = udp.server_address[1]
            try:
                tcp = _TcpServer((self._host, port), _Tcp)
            except OSError:
                udp.server_close()
                continue
            break
        else:
            raise OSError("no free port for the DNS server")
        udp.zones = tcp.zones = self.zones
        for server in (udp, tcp):
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                             daemon=True).start()
            self._servers.append(server)
        self.port = port
        return self._host, port

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()

    def __enter__(self) -> tuple[str, int]:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
