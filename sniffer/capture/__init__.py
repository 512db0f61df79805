"""Capture sources for the offline path: pcap/pcapng files and packet decoding.

``open_capture(path)`` reads pcap (both byte orders, µs and ns) and pcapng (several
sections and interfaces) lazily; ``PacketDecoder`` turns a link-layer frame into the
TCP/UDP fields the reassembler needs, with IPv4/IPv6 fragments reassembled under bounds.
"""

from sniffer.capture.decode import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    PROTO_TCP,
    PROTO_UDP,
    TCP_ACK,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    PacketDecoder,
    ip_text,
)
from sniffer.capture.files import CaptureError, CaptureReader, open_capture

__all__ = [
    "LINKTYPE_ETHERNET",
    "LINKTYPE_IPV4",
    "LINKTYPE_IPV6",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_LINUX_SLL2",
    "LINKTYPE_LOOP",
    "LINKTYPE_NULL",
    "LINKTYPE_RAW",
    "PROTO_TCP",
    "PROTO_UDP",
    "TCP_ACK",
    "TCP_FIN",
    "TCP_RST",
    "TCP_SYN",
    "CaptureError",
    "CaptureReader",
    "PacketDecoder",
    "ip_text",
    "open_capture",
]
