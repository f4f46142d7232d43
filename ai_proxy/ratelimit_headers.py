"""``x-ratelimit-*`` response headers from a quota admission (the rule closest to its limit)."""

from __future__ import annotations

import math

from broker.kernel.quota.models import Admission


def ratelimit_headers(admission: Admission) -> dict[str, str]:
    tightest = admission.tightest()
    if tightest is None:
        return {}
    return {
        "x-ratelimit-limit": f"{tightest.rule.limit:g}",
        "x-ratelimit-remaining": f"{tightest.remaining:g}",
        "x-ratelimit-reset": str(max(1, math.ceil(tightest.resets_in))),
        "x-ratelimit-rule": tightest.rule.label,
    }
