"""``GET /api/v1/export.har`` and ``GET /api/v1/export.pcap``."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["export"])
