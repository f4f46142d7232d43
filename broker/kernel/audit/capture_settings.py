"""The body capture settings: the config file's ``audit.capture`` and what an admin stores in the console."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from broker.kernel.audit.redaction import BadPattern, compile_pattern


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RedactionPatternConfig(_Frozen):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")  # counted and shown as [REDACTED:<name>]
    pattern: str = Field(min_length=1, max_length=1000)  # RE2 syntax (no backreferences, no lookaround)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            compile_pattern(value)
        except BadPattern as exc:
            raise ValueError(f"not a valid RE2 pattern: {exc}") from None
        return value


class AuditCaptureConfig(_Frozen):
    """What bodies audit events capture. The file's values hold until an admin changes them in the console
    (stored in the database and applied on every instance without a restart)."""

    ai_request_bodies: bool = False
    ai_response_bodies: bool = False
    mcp_arguments: bool = False
    mcp_results: bool = False
    # A captured body larger than this is offloaded (to S3 or a local directory), never truncated.
    body_max_bytes: int = Field(64 << 10, ge=1 << 10, le=1 << 20)
    redaction_patterns: tuple[RedactionPatternConfig, ...] = ()
    # Days captured bodies are kept (0: as long as their event); usually shorter than the metadata's.
    body_retention_days: int = Field(30, ge=0, le=36500)
