"""Open and click tracking, under ``/t/`` (``marketing.tracking`` builds these URLs)."""

from django.urls import path

from marketing import views

app_name = "marketing"

urlpatterns = [
    path("<str:token>/open.gif", views.open_pixel, name="open"),
    path("<str:token>/<str:number>/", views.click, name="click"),
    # A link cut short by a mail client: the friendly page, not a bare 404.
    path("<str:token>/", views.click, name="click_incomplete"),
]
