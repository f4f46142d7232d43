from __future__ import annotations

import json

import anyio
import pytest

from broker.webhooks import SIGNATURE_HEADER, WebhookSender, WebhookTarget, signature
from tests.webhook_receiver import Receiver


async def deliver(sender: WebhookSender, receiver: Receiver, payload: dict[str, object]) -> None:
    async with anyio.create_task_group() as group:
        group.start_soon(sender.run)
        sender.send(payload)
        assert await anyio.to_thread.run_sync(receiver.wait_for, 1)
        group.cancel_scope.cancel()


async def test_payload_is_posted_and_signed(receiver: Receiver) -> None:
    sender = WebhookSender([WebhookTarget(receiver.url, "hook-secret")], backoff=0.01)
    await deliver(sender, receiver, {"type": "quota.threshold", "threshold_percent": 80})
    headers, body = receiver.posts[0]
    assert json.loads(body)["threshold_percent"] == 80
    assert headers["x-warden-event"] == "quota.threshold"
    assert headers[SIGNATURE_HEADER] == signature("hook-secret", body)


@pytest.mark.parametrize("receiver", [2], indirect=True)
async def test_server_errors_are_retried(receiver: Receiver) -> None:
    sender = WebhookSender([WebhookTarget(receiver.url)], backoff=0.01)
    await deliver(sender, receiver, {"type": "quota.threshold"})
    assert len(receiver.posts) == 1 and receiver.failures == 0
