"""All the fake LLM providers on one port, each under its own prefix, for the proxy's tests: OpenAI at ``/v1``
(and an always-failing one at ``/fail/v1``), Azure OpenAI at ``/azure``, Anthropic at ``/anthropic``, Gemini at
``/gemini``, Bedrock at ``/bedrock``. ``GET /record`` returns what they received.

    python -m tests.ai.fake_providers PORT
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.ai import fake_anthropic, fake_bedrock, fake_gemini, fake_openai
from tests.ai.fake_state import abandoned, failing_calls, received, traceparents
from tests.interaction.process import python_module_serving


async def record(request: Request) -> JSONResponse:
    return JSONResponse({"received": received, "abandoned": abandoned, "failing_calls": len(failing_calls),
                         "traceparents": traceparents})


app = Starlette(routes=[*fake_openai.routes, *fake_anthropic.routes, *fake_gemini.routes, *fake_bedrock.routes,
                        Route("/record", record, methods=["GET"])])

@contextmanager
def launched() -> Iterator[str]:
    """These fakes in a process of their own, for as long as the block runs; yields their base URL."""
    with python_module_serving("tests.ai.fake_providers", "{port}") as port:
        yield f"http://127.0.0.1:{port}"


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
