from django.contrib import admin
from django.urls import include, path

from config import outbox

urlpatterns = [
    path("admin/", admin.site.urls),
    path("outbox/", outbox.message_list, name="outbox"),
    path("outbox/<str:name>/", outbox.message_detail, name="outbox_message"),
    # anymail's tracking webhooks (anymail.urls), refusing bad requests with a clear 4xx.
    path("anymail/", include("marketing.webhooks")),
    # Open pixel and click redirect of tracked messages (marketing.tracking).
    path("t/", include("marketing.urls")),
    path("", include("subscribers.urls")),
]
