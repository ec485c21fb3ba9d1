"""Reports: each campaign's funnel and timeline, and the list-health dashboard.

Every page reads counters or rollups, never a COUNT over a campaign's deliveries or the
whole ledger, so it answers as fast with a million subscribers as with ten:

- ``counters``: per campaign and hour, what providers reported (delivered, bounced,
  complained, opened, clicked), each delivery once per stage, added where events are
  processed;
- ``rollup``: a Celery beat task (``LIST_HEALTH_ROLLUP_EVERY_SECONDS``) rebuilds the sent
  and tracked counts per hour of campaigns whose ``sent_count`` moved, the unsubscribes
  of recent campaigns, and the daily list-health rows from the ledger;
- ``campaign``, ``health``: the numbers the pages show (selectors: no writes);
- ``charts``: server-rendered SVG, each with its numbers in a table beside it;
- ``exports``: CSV of every table, streamed, formula-safe, each download audited;
- ``views``: the admin pages.
"""
