"""The open pixel and the click redirect of tracked messages (``marketing.tracking``).

Thin: read the token, ask ``tracking`` where a link goes, call one recording service,
answer. Neither view reads or sets a cookie, and nothing about the request (IP address,
user agent) is kept. What is noted, and only with the subscriber's consent, is decided
in ``tracking``.
"""

from __future__ import annotations

import base64
import logging

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from marketing import tracking

logger = logging.getLogger(__name__)

# A transparent GIF of one pixel.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


# An image fetched by a mail client: whatever happens, it gets an image back (a CSRF or
# error page would show as a broken image in the email), and only a GET notes anything.
@csrf_exempt
def open_pixel(request: HttpRequest, token: str) -> HttpResponse:
    delivery_id = tracking.read_token(token)
    if delivery_id is not None and request.method == "GET":
        try:
            tracking.delivery_record_open(delivery_id=delivery_id)
        except DatabaseError:
            logger.exception("open of delivery %s not recorded", delivery_id)
    response = HttpResponse(PIXEL, content_type="image/gif")
    response["Cache-Control"] = "private, max-age=86400"
    return response


@require_http_methods(["GET", "HEAD"])
def click(request: HttpRequest, token: str, number: str = "") -> HttpResponse:
    """302 to link ``number`` of the message's own campaign, and nowhere else."""
    delivery_id = tracking.read_token(token)
    target = None
    if delivery_id is not None and number.isascii() and number.isdigit() and len(number) < 6:
        target = tracking.link_target(delivery_id=delivery_id, number=int(number))
    if delivery_id is None or target is None:
        return render(request, "marketing/link_problem.html", status=404)
    if request.method == "GET":  # a HEAD (link checkers) notes nothing
        try:
            tracking.delivery_record_click(delivery_id=delivery_id, number=int(number))
        except DatabaseError:
            logger.exception("click on link %s of delivery %s not recorded", number, delivery_id)
    response = HttpResponseRedirect(target)
    # The token in our URL is nobody else's business, the linked site's included.
    response["Referrer-Policy"] = "no-referrer"
    return response
