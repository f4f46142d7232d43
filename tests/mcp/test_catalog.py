from __future__ import annotations

import pytest

from broker.mcp.catalog import PAGE_SIZE, UnknownName, page


def test_pages_cover_every_item_once_in_order() -> None:
    items = list(range(PAGE_SIZE * 2 + 7))
    seen: list[int] = []
    cursor: str | None = None
    while True:
        chunk, cursor = page(items, cursor)
        seen += chunk
        if cursor is None:
            break
    assert seen == items


def test_a_short_list_has_no_next_cursor() -> None:
    assert page([1, 2], None) == ([1, 2], None)


@pytest.mark.parametrize("cursor", ["!!!", "LTE="])  # not base64 of a number / base64 of "-1"
def test_a_forged_cursor_is_invalid_params(cursor: str) -> None:
    with pytest.raises(UnknownName) as caught:
        page([1], cursor)
    assert caught.value.code == -32602
