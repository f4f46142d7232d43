"""Consent in band: a call that needs the caller's own upstream account asks the caller to link it, then goes on.

A client that declared URL-mode elicitation is sent the address that starts linking the account, instead of
an error: a handshake-era client over its session (``elicitation/create``, mode ``url``), the call waiting
until the account is linked (on any instance: link changes are broadcast) and then proceeding; a 2026-07-28
client as an ``input_required`` result, whose retry waits the same way. A client that cannot be asked, a
declined or cancelled elicitation, or an account still missing when the wait ends gets -32050 as before.
"""

from __future__ import annotations

import base64
import contextlib
import json
import uuid
from typing import Any

import anyio
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.session import ServerSession
from mcp.shared.exceptions import MCPError

from broker.kernel.crypto import SealedValueError, SecretBox
from broker.kernel.identity.models import Principal
from broker.mcp.errors import CredentialRequired
from broker.mcp.user_upstreams import UserUpstreams

CONSENT_WAIT = 300.0  # how long a call waits for the user to finish linking
_KEY = "warden_link_account"
_STATE_PREFIX = "warden-link:"
_CONTEXT = b"link_consent:"


def can_elicit_url(capabilities: types.ClientCapabilities | None) -> bool:
    return capabilities is not None and capabilities.elicitation is not None \
        and capabilities.elicitation.url is not None


class LinkConsent:
    def __init__(self, box: SecretBox, user_upstreams: UserUpstreams, wait: float = CONSENT_WAIT) -> None:
        self._box = box
        self._user_upstreams = user_upstreams
        self._wait = wait

    async def over_session(self, ctx: ServerRequestContext[Any], session: ServerSession, principal: Principal,
                           required: CredentialRequired) -> bool:
        """Ask a handshake-era client on the call's stream; whether the account is linked in time."""
        server, url = str(required.data["server"]), _link(required)
        elicitation_id = uuid.uuid4().hex
        try:
            answer = await session.elicit_url(_message(required), url, elicitation_id, ctx.request_id)
        except (MCPError, anyio.BrokenResourceError, anyio.ClosedResourceError, RuntimeError):
            return False
        if answer.action != "accept":
            return False
        linked = await self._user_upstreams.wait_for_link(principal, server, self._wait)
        if linked:
            with contextlib.suppress(Exception):  # the call goes on whether or not the client hears of it
                await session.send_notification(types.ElicitCompleteNotification(
                    params=types.ElicitCompleteNotificationParams(elicitation_id=elicitation_id)))
        return linked

    def input_required(self, principal: Principal, required: CredentialRequired) -> types.InputRequiredResult:
        """What a 2026-07-28 client gets: the elicitation to answer, and state that names the server."""
        server = str(required.data["server"])
        request = types.ElicitRequest(params=types.ElicitRequestURLParams(
            message=_message(required), url=_link(required), elicitation_id=uuid.uuid4().hex))
        state = json.dumps({"server": server, "user": principal.user.id if principal.user else None})
        sealed = base64.urlsafe_b64encode(self._box.seal(state.encode(), _CONTEXT)).decode()
        return types.InputRequiredResult(input_requests={_KEY: request}, request_state=_STATE_PREFIX + sealed)

    async def answered(self, principal: Principal, params: types.CallToolRequestParams
                       ) -> types.CallToolRequestParams | None:
        """A 2026-07-28 retry that answers Warden's own question: wait for the account (when the user
        accepted), and the request as the upstream should see it (without that answer). None otherwise."""
        state = params.request_state
        if not state or not state.startswith(_STATE_PREFIX):
            return None
        try:
            opened = json.loads(self._box.open(base64.urlsafe_b64decode(state[len(_STATE_PREFIX):]), _CONTEXT))
        except (SealedValueError, ValueError):
            raise MCPError(types.INVALID_PARAMS, "request_state was not issued by this server") from None
        if opened["user"] != (principal.user.id if principal.user else None):
            raise MCPError(types.INVALID_PARAMS, "request_state belongs to another caller")
        answer = (params.input_responses or {}).get(_KEY)
        if isinstance(answer, types.ElicitResult) and answer.action == "accept":
            await self._user_upstreams.wait_for_link(principal, str(opened["server"]), self._wait)
        return params.model_copy(update={"input_responses": None, "request_state": None})


def _message(required: CredentialRequired) -> str:
    return (f"{required.data['tool']} runs with your own {required.data['server']} account. Open this link to"
            " connect it; the call continues once it is connected.")


def _link(required: CredentialRequired) -> str:
    return str(required.link_url or required.data["connect_url"])
