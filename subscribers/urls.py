from django.urls import path

from subscribers.views import data_rights, links, manage, preferences, signup

app_name = "subscribers"

urlpatterns = [
    path("", signup.signup, name="signup"),
    path("signup/check-your-inbox/", signup.check_inbox, name="check_inbox"),
    path("confirm/<str:token>/", signup.confirm, name="confirm"),
    # RFC 8058: the List-Unsubscribe URL; mail clients POST "List-Unsubscribe=One-Click" here.
    path("u/<str:token>/", links.unsubscribe, name="unsubscribe"),
    path("preferences/<str:token>/", preferences.preferences, name="preferences"),
    path("email-change/<str:token>/", preferences.email_change_confirm, name="email_change_confirm"),
    path("preferences/<str:token>/my-data/", data_rights.my_data, name="my_data"),
    path("preferences/<str:token>/delete/", data_rights.delete_me, name="delete_me"),
    path("goodbye/", data_rights.erased, name="erased"),
    path("manage/", manage.manage, name="manage"),
    path("manage/sent/", manage.manage_sent, name="manage_sent"),
]
