from django.urls import path

from subscribers import views

app_name = "subscribers"

urlpatterns = [
    path("", views.signup, name="signup"),
    path("signup/check-your-inbox/", views.check_inbox, name="check_inbox"),
    path("confirm/<str:token>/", views.confirm, name="confirm"),
]
