"""Provider dialects: how Warden speaks to each provider family.

Requests reach a provider in one of two ways. When the client called the provider's own API (Chat Completions
on an OpenAI-format provider, Messages on Anthropic), the body goes on as it is (``native``). Otherwise it has
been converted to the hub form, Chat Completions, and the dialect turns that into the provider's request and
the provider's answers and streams back into Chat Completions answers and chunks.
"""
