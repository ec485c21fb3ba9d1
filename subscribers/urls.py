from django.urls import path

from subscribers.views import links, signup

app_name = "subscribers"

urlpatterns = [
    path("", signup.signup, name="signup"),
    path("signup/check-your-inbox/", signup.check_inbox, name="check_inbox"),
    path("confirm/<str:token>/", signup.confirm, name="confirm"),
    # RFC 8058: the List-Unsubscribe URL; mail clients POST "List-Unsubscribe=One-Click" here.
    path("u/<str:token>/", links.unsubscribe, name="unsubscribe"),
    path("preferences/<str:token>/", links.preferences, name="preferences"),
]
