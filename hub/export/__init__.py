"""Exports of stored (already redacted) entries: HAR 1.2 and re-synthesized PCAP."""

from hub.export.har import HTTP_PROTOS, entries_to_har
from hub.export.pcap import entries_to_pcap

__all__ = ["HTTP_PROTOS", "entries_to_har", "entries_to_pcap"]
