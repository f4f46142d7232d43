"""The fake AWS Bedrock provider, speaking the Converse API's exact wire format:
``/bedrock/model/<model id>/converse`` (JSON) and ``/converse-stream`` (the binary
``application/vnd.amazon.eventstream``, each frame CRC-checked as AWS sends it), and ``/count-tokens``
(4 bytes of ``messages`` JSON a token).

Verifies the SigV4 signature with botocore against the access key ``AKIDFAKE`` / ``bedrock-secret`` in
``us-east-1`` (recomputed from the request as it arrived: method, raw path, the signed headers, the body);
checks roles alternating from ``user`` and every ``toolResult`` answering a ``toolUse`` of the turn before.
Answers with text, or a ``toolUse`` block when tools are offered and no result came back yet.
"""

from __future__ import annotations

import binascii
import json
import re
import struct
from collections.abc import AsyncIterator
from typing import Any

import anyio
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.ai.fake_state import CITY, INPUT_TOKENS, OUTPUT_TOKENS, TEXT, received

ACCESS_KEY_ID, SECRET = "AKIDFAKE", "bedrock-secret"
REGION = "us-east-1"
_AUTHORIZATION = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/]+)/\d{8}/([^/]+)/bedrock/aws4_request, "
                            r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})")


def _error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status, headers={"x-amzn-errortype": kind})


def _signature_refusal(request: Request, body: bytes) -> Response | None:
    found = _AUTHORIZATION.fullmatch(request.headers.get("authorization", ""))
    if not found or found[1] != ACCESS_KEY_ID or found[2] != REGION:
        return _error(403, "UnrecognizedClientException", "The security token included in the request is invalid")
    raw_path = request.scope["raw_path"].decode()
    signed = AWSRequest("POST", f"http://{request.headers['host']}{raw_path}", data=body,
                        headers={name: request.headers[name] for name in found[3].split(";") if name != "host"})
    signed.context["timestamp"] = request.headers.get("x-amz-date", "")
    signer = SigV4Auth(Credentials(ACCESS_KEY_ID, SECRET), "bedrock", REGION)
    expected = signer.signature(signer.string_to_sign(signed, signer.canonical_request(signed)), signed)
    if expected != found[4]:
        return _error(403, "InvalidSignatureException", "The request signature we calculated does not match the"
                      " signature you provided")
    return None


def _refusal(body: dict[str, Any]) -> Response | None:
    messages = body.get("messages") or []
    if not messages or messages[0].get("role") != "user":
        return _error(400, "ValidationException", "A conversation must start with a user message")
    previous_uses: set[str] = set()
    for number, message in enumerate(messages):
        if number and message["role"] == messages[number - 1]["role"]:
            return _error(400, "ValidationException", "A conversation must alternate between user and assistant")
        if not message.get("content"):
            return _error(400, "ValidationException", f"messages.{number}.content must not be empty")
        for block in message["content"]:
            if "toolResult" in block and block["toolResult"].get("toolUseId") not in previous_uses:
                return _error(400, "ValidationException", "toolResult blocks must match the previous toolUse")
        previous_uses = {b["toolUse"]["toolUseId"] for b in message["content"] if "toolUse" in b}
    return None


def _wants_tool(body: dict[str, Any]) -> str | None:
    answered = any("toolResult" in block for block in body["messages"][-1]["content"])
    tools = (body.get("toolConfig") or {}).get("tools") or []
    return tools[0]["toolSpec"]["name"] if tools and not answered else None


async def converse(request: Request) -> Response:
    raw = await request.body()
    if (refused := _signature_refusal(request, raw)) is not None:
        return refused
    body = json.loads(raw)
    received.append({"model_id": request.path_params["model"], **body})
    if request.path_params["method"] == "count-tokens":
        converse = (body.get("input") or {}).get("converse") or {}
        return _refusal(converse) or JSONResponse({"inputTokens": len(json.dumps(converse["messages"])) // 4})
    if (refused := _refusal(body)) is not None:
        return refused
    tool = _wants_tool(body)
    if request.path_params["method"] == "converse-stream":
        return StreamingResponse(_stream(tool), media_type="application/vnd.amazon.eventstream")
    content = [{"toolUse": {"toolUseId": "tooluse_fake1", "name": tool, "input": CITY}}] if tool \
        else [{"text": "".join(TEXT)}]
    return JSONResponse({"output": {"message": {"role": "assistant", "content": content}},
                         "stopReason": "tool_use" if tool else "end_turn",
                         "usage": {"inputTokens": INPUT_TOKENS, "outputTokens": OUTPUT_TOKENS,
                                   "totalTokens": INPUT_TOKENS + OUTPUT_TOKENS},
                         "metrics": {"latencyMs": 12}})


def frame(event_type: str, payload: dict[str, Any]) -> bytes:
    """One event stream message: prelude (lengths and their CRC), string headers, JSON payload, message CRC."""
    headers = b"".join(struct.pack(">B", len(name)) + name.encode() + b"\x07" + struct.pack(">H", len(value))
                       + value.encode() for name, value in ((":event-type", event_type),
                                                            (":content-type", "application/json"),
                                                            (":message-type", "event")))
    data = json.dumps(payload).encode()
    prelude = struct.pack(">II", 12 + len(headers) + len(data) + 4, len(headers))
    message = prelude + struct.pack(">I", binascii.crc32(prelude)) + headers + data
    return message + struct.pack(">I", binascii.crc32(message))


async def _stream(tool: str | None) -> AsyncIterator[bytes]:
    yield frame("messageStart", {"role": "assistant"})
    if tool:
        yield frame("contentBlockStart", {"contentBlockIndex": 0, "start": {"toolUse": {
            "toolUseId": "tooluse_fake1", "name": tool}}})
        for part in ('{"city"', ': "Paris"}'):
            yield frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": part}}})
    else:
        for word in TEXT:
            await anyio.sleep(0.01)
            yield frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": word}})
    yield frame("contentBlockStop", {"contentBlockIndex": 0})
    yield frame("messageStop", {"stopReason": "tool_use" if tool else "end_turn"})
    yield frame("metadata", {"usage": {"inputTokens": INPUT_TOKENS, "outputTokens": OUTPUT_TOKENS,
                                       "totalTokens": INPUT_TOKENS + OUTPUT_TOKENS}, "metrics": {"latencyMs": 12}})


routes = [Route("/bedrock/model/{model}/{method}", converse, methods=["POST"])]
