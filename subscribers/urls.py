from django.urls import path

from subscribers import views

app_name = "subscribers"

urlpatterns = [
    path("", views.signup, name="signup"),
    path("signup/check-your-inbox/", views.check_inbox, name="check_inbox"),
    path("confirm/<str:token>/", views.confirm, name="confirm"),
    # RFC 8058: the List-Unsubscribe URL; mail clients POST "List-Unsubscribe=One-Click" here.
    path("u/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("preferences/<str:token>/", views.preferences, name="preferences"),
]
