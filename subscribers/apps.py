from django.apps import AppConfig


class SubscribersConfig(AppConfig):
    name = "subscribers"
    verbose_name = "Subscribers and consent"

    def ready(self) -> None:
        from subscribers import checks  # noqa: F401 (registers the system checks)
