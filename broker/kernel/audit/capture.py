"""Body capture for audit events: which bodies are kept (settings changed in the console apply on every
instance at once), redacted before they are written anywhere, and marked for offloading when larger than
``body_max_bytes`` (the audit writer moves those to the offload store instead of truncating them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio

from broker.kernel.audit.capture_settings import AuditCaptureConfig
from broker.kernel.audit.redaction import RedactionPattern, Redactor

SETTINGS_NAME = "audit_capture"
INLINE_CHARACTERS = 64 << 10  # longer bodies are redacted in a worker thread, the event loop serving on meanwhile


@dataclass(frozen=True, slots=True)
class CapturedBody:
    text: str  # redacted
    bytes: int  # the body's size as received, before redaction
    redactions: dict[str, int]
    offload: bool  # larger than body_max_bytes once redacted

    def summary(self) -> dict[str, Any]:
        return {"bytes": self.bytes, "redactions": self.redactions, "offloaded": self.offload}


class BodyCapture:
    """The capture settings in force on this instance, and capturing under them."""

    def __init__(self, settings: AuditCaptureConfig) -> None:
        self.apply(settings)

    def apply(self, settings: AuditCaptureConfig) -> None:
        self._redactor = Redactor(RedactionPattern(p.name, p.pattern) for p in settings.redaction_patterns)
        self.settings = settings
        self._wanted = {"request": settings.ai_request_bodies, "response": settings.ai_response_bodies,
                        "arguments": settings.mcp_arguments, "result": settings.mcp_results}

    def wants(self, part: str) -> bool:
        """Whether ``part`` (AI: request, response; MCP: arguments, result) is captured now."""
        return self._wanted[part]

    async def bodies(self, **parts: bytes | str | None) -> dict[str, CapturedBody] | None:
        """The given parts that are captured now, captured; None when there are none."""
        captured = {part: await self.capture(data) for part, data in parts.items()
                    if data is not None and self._wanted[part]}
        return captured or None

    async def capture(self, data: bytes | str) -> CapturedBody:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        size = len(data) if isinstance(data, bytes) else len(text.encode())
        redactor, limit = self._redactor, self.settings.body_max_bytes
        if len(text) > INLINE_CHARACTERS:
            redacted, counts = await anyio.to_thread.run_sync(redactor.redact, text)
        else:
            redacted, counts = redactor.redact(text)
        return CapturedBody(redacted, size, counts, len(redacted.encode()) > limit)

