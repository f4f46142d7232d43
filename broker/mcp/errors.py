"""Errors of the MCP broker, each with the JSON-RPC code the downstream client receives.

BrokerError
├── UnknownTool           -32602  no such tool in the caller's catalog (names the tool)
├── UpstreamUnavailable   -32001  the upstream is down, reconnecting, or its breaker is open
├── UpstreamTimeout       -32002  the upstream did not answer within the server's timeout
└── CredentialRequired    -32050  the tool needs the caller's own credential for its server, not linked yet
"""

from __future__ import annotations

from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS


class BrokerError(Exception):
    """A failure the broker reports to the downstream client as a JSON-RPC error."""

    code = -32000

    def __init__(self, message: str, **data: object) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def to_mcp(self) -> MCPError:
        return MCPError(self.code, self.message, self.data or None)


class UnknownTool(BrokerError):
    code = INVALID_PARAMS


class UpstreamUnavailable(BrokerError):
    code = -32001


class UpstreamTimeout(BrokerError):
    code = -32002


class CredentialRequired(BrokerError):
    code = -32050
    link_url: str | None = None  # where linking starts in one step (asked in band; not part of the error)
