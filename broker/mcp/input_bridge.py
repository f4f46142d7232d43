"""Requests from a handshake-era upstream to a 2026-07-28 client, turned into ``input_required`` results.

A 2026-07-28 client has no session for the upstream to send sampling, elicitation or roots requests on;
instead the server returns ``input_required`` and the client retries the call with its answers. A
handshake-era upstream cannot do that itself, so Warden does it for it, statelessly (the retry may land on
any instance):

1. the call runs on a session of its own, whose callbacks answer the upstream's requests, in order, from the
   answers gathered so far;
2. the first request without an answer ends the attempt: Warden returns ``input_required`` with that request
   and a ``requestState`` holding the answers so far (sealed with the secret box and bound to the API key);
3. the retry brings the client's answer; the call runs again from the start and every earlier request is
   answered from the state, so the upstream proceeds further, until it returns its result.

The upstream runs the tool again on each round, so what it did before its first request happens again:
the same trade-off the 2026-07-28 revision asks of every server that returns ``input_required``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import mcp_types as types
from mcp import ClientSession
from mcp.client.session import ClientRequestContext
from mcp.shared.exceptions import MCPError

from broker.kernel.crypto import SealedValueError, SecretBox
from broker.mcp.client_sessions import SessionBudget, can_be_asked
from broker.mcp.errors import BrokerError
from broker.mcp.upstream import ClientCallbacks, UpstreamConnection, open_client

log = logging.getLogger(__name__)
R = TypeVar("R")
Retryable = types.CallToolRequestParams | types.GetPromptRequestParams | types.ReadResourceRequestParams
_CONTEXT = b"mcp.input_required:"
_ANSWER_TYPES: dict[str, Any] = {
    "sampling/createMessage": types.CreateMessageResult, "elicitation/create": types.ElicitResult,
    "roots/list": types.ListRootsResult,
}


class InputBridge:
    def __init__(self, box: SecretBox, budget: SessionBudget) -> None:
        self._box = box
        self._budget = budget

    @staticmethod
    def wanted(client: types.ClientCapabilities | None, connection: UpstreamConnection) -> bool:
        """Whether a call needs the bridge: a 2026-07-28 client able to answer, a handshake-era upstream."""
        return can_be_asked(client) and not connection.modern

    async def call(self, connection: UpstreamConnection, request: Retryable, key_id: str | None,
                   client: types.ClientCapabilities, operation: Callable[[ClientSession], Awaitable[R]]
                   ) -> R | types.InputRequiredResult | None:
        """The operation's result (a tool call, a prompt, a resource read), or ``input_required``; None when no
        session is free (use the pooled one)."""
        answers = self._answers(request, key_id)
        asked: list[tuple[str, types.InputRequest]] = []
        ended = anyio.Event()

        def answer_from_state(request: types.InputRequest) -> Any:
            index = len(asked)
            fingerprint = _fingerprint(request)
            asked.append((fingerprint, request))
            if index < len(answers) and answers[index][0] == fingerprint:
                return _ANSWER_TYPES[request.method].model_validate(answers[index][1])
            ended.set()  # the first unanswered request ends this attempt
            return types.ErrorData(code=types.INVALID_REQUEST, message="waiting for the client's answer")

        async def sampling(context: ClientRequestContext, params: types.CreateMessageRequestParams) -> Any:
            return answer_from_state(types.CreateMessageRequest(params=params))

        async def elicitation(context: ClientRequestContext, params: types.ElicitRequestParams) -> Any:
            return answer_from_state(types.ElicitRequest(params=params))

        async def list_roots(context: ClientRequestContext) -> Any:
            return answer_from_state(types.ListRootsRequest())

        callbacks = ClientCallbacks(
            sampling=sampling if client.sampling else None, sampling_capabilities=client.sampling,
            elicitation=elicitation if client.elicitation else None,
            list_roots=list_roots if client.roots else None)
        if not self._budget.take(connection.name):
            return None
        result: R | None = None
        try:
            async with open_client(connection, callbacks) as (session, _):
                try:
                    result = await connection.forward(operation, session)
                except (MCPError, BrokerError):
                    if not ended.is_set():
                        raise  # a failure of its own, not the refusal that ended this attempt
        finally:
            self._budget.give_back(connection.name)
        if not ended.is_set():
            assert result is not None
            return result
        fingerprint, pending = asked[-1]
        state = {"answers": answers, "pending": fingerprint, "key": key_id}
        sealed = self._box.seal(json.dumps(state).encode(), _CONTEXT + (key_id or "").encode())
        return types.InputRequiredResult(input_requests={f"r{len(asked) - 1}": pending},
                                         request_state=base64.urlsafe_b64encode(sealed).decode())

    def _answers(self, params: Retryable, key_id: str | None) -> list[list[Any]]:
        """The answers gathered in earlier rounds, plus the one this retry brings."""
        if not params.request_state:
            return []
        try:
            sealed = base64.urlsafe_b64decode(params.request_state.encode())
            state = json.loads(self._box.open(sealed, _CONTEXT + (key_id or "").encode()))
        except (ValueError, SealedValueError) as exc:
            raise MCPError(types.INVALID_PARAMS, "requestState is not one this gateway issued to this key") from exc
        answers: list[list[Any]] = state["answers"]
        responses = list((params.input_responses or {}).values())
        if len(responses) != 1:
            raise MCPError(types.INVALID_PARAMS, "exactly one input response is expected for this requestState")
        answers.append([state["pending"], responses[0].model_dump(mode="json", by_alias=True, exclude_none=True)])
        return answers


def _fingerprint(request: types.InputRequest) -> str:
    canonical = json.dumps(request.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()
