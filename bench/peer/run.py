"""django-newsletter sending N personalised text+HTML messages: ``python -m bench.peer.run N``.

Runs in the peer venv (``var/bench/venv-peer``) with ``DJANGO_SETTINGS_MODULE=bench.peer.settings``.
Sets up one newsletter, one message with one article and N subscriptions, prepares the
submission as the admin's "submit" does, then times ``Submission.submit_queue()``, which
is what django-newsletter's ``submit_newsletter`` command (its cron job) calls. Prints one
JSON line: messages, seconds, per_second, versions.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import timedelta

ARTICLE = (
    "<p>This month: <strong>three new recipes</strong>, a "
    '<a href="https://example.com/tour">guided tour</a> and the answers to your questions.</p>'
    "<h3>Recipes</h3><ol><li>Pumpkin soup with toasted seeds</li><li>Lentil and spinach stew</li>"
    '<li>Apple crumble</li></ol><blockquote><p>"The crumble was gone in five minutes." (a reader)'
    "</p></blockquote><p>See you next month!</p>"
)


def main(count: int) -> dict[str, object]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.peer.settings")
    import django

    django.setup()
    import newsletter
    from django.contrib.sites.models import Site
    from django.core.management import call_command
    from django.utils.timezone import now
    from newsletter.models import Article, Message, Newsletter, Submission, Subscription

    call_command("migrate", verbosity=0, interactive=False)
    site = Site.objects.get_current()
    letter = Newsletter.objects.create(
        title="Bench news", slug="bench", email="news@example.com", sender="Example Newsletter"
    )
    letter.site.set([site])
    message = Message.objects.create(title="November news", slug="november", newsletter=letter)
    Article.objects.create(
        post=message, sortorder=10, title="This month", text=ARTICLE, url="https://example.com/tour"
    )
    Subscription.objects.bulk_create(
        (
            Subscription(
                newsletter=letter,
                name_field=f"Reader{n}",
                email_field=f"reader{n:09d}@example.net",
                subscribed=True,
                subscribe_date=now(),
            )
            for n in range(count)
        ),
        batch_size=5000,
    )
    submission = Submission.from_message(message)
    submission.prepared = True
    submission.publish_date = now() - timedelta(minutes=1)
    submission.save()

    started, cpu_started = time.perf_counter(), time.process_time()
    Submission.submit_queue()
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    submission.refresh_from_db()
    return {
        "messages": count,
        "sent_flag": submission.sent,
        "seconds": seconds,
        "per_second": count / seconds,
        "cpu_seconds": cpu_seconds,
        "cpu_us_per_message": round(cpu_seconds / count * 1e6),
        "django_newsletter": getattr(newsletter, "__version__", "1.2.1"),
        "django": django.get_version(),
    }


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]))))
