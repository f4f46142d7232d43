"""Small server-rendered console pages: the outcome of a redirect flow (an OAuth callback, single sign-on) and
the consent page, in the console's look, never cached."""

from __future__ import annotations

import html

from starlette.responses import HTMLResponse

NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


def notice_page(title: str, body: str, status: int = 200, *, refresh: str | None = None,
                scripts: tuple[str, ...] = (), heading_id: str | None = None) -> HTMLResponse:
    """``body`` is HTML the caller built (escaping what it took from elsewhere); ``refresh`` moves the browser
    on by a navigation of its own (after a cross-site redirect, so that SameSite=Strict cookies come along)."""
    head = [f'<meta http-equiv="refresh" content="0; url={html.escape(refresh)}">'] if refresh else []
    head += [f'<script type="module" src="{html.escape(src)}"></script>' for src in scripts]
    heading = f' id="{heading_id}"' if heading_id else ""
    return HTMLResponse(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{html.escape(title)} · Warden'
        f'</title>{"".join(head)}<link rel="stylesheet" href="/static/console.css"></head><body>'
        f'<main class="card"><h1{heading}>{html.escape(title)}</h1>{body}</main></body></html>',
        status, headers=NO_STORE)
