"""An admin paginator that does not count a million rows to show fifty of them.

Django's paginator runs ``SELECT COUNT(*)`` over the whole filtered list on every page; on
PostgreSQL that is a scan of every row (0.1 s for a million subscribers, 0.8 s for eight
million consent events). This one counts exactly up to ``EXACT_UP_TO`` rows, a bounded scan;
past that it takes the planner's estimate for the same query (``EXPLAIN``, no rows read),
and ``estimated`` is True so the page says "about". Other databases count exactly.

Use it with ``show_full_result_count = False``, or the admin counts the whole table again.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property

EXACT_UP_TO = 10_000


class EstimatedCountPaginator(Paginator):
    estimated = False

    @cached_property
    def count(self) -> int:
        objects = self.object_list
        if not isinstance(objects, QuerySet) or connections[objects.db].vendor != "postgresql":
            return super().count
        bounded = objects.order_by()[: EXACT_UP_TO + 1].count()
        if bounded <= EXACT_UP_TO:
            return bounded
        self.estimated = True
        return max(_planner_rows(objects), bounded)


def _planner_rows(objects: QuerySet[Any]) -> int:
    plan = json.loads(objects.order_by().explain(format="json"))
    return int(plan[0]["Plan"]["Plan Rows"])
