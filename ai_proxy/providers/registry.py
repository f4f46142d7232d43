"""The dialect each provider type speaks."""

from __future__ import annotations

from ai_proxy.providers.anthropic import AnthropicDialect
from ai_proxy.providers.base import Dialect
from ai_proxy.providers.bedrock import BedrockDialect
from ai_proxy.providers.gemini import GeminiDialect
from ai_proxy.providers.openai import OpenAIDialect

DIALECTS: dict[str, Dialect] = {
    "openai": OpenAIDialect(), "openai_compatible": OpenAIDialect(), "azure_openai": OpenAIDialect(azure=True),
    "anthropic": AnthropicDialect(), "gemini": GeminiDialect(), "bedrock": BedrockDialect(),
}
