from django.apps import AppConfig


class MarketingConfig(AppConfig):
    name = "marketing"
    verbose_name = "Marketing"

    def ready(self) -> None:
        from anymail.signals import tracking

        from marketing import data_rights, receivers
        from subscribers import exports

        tracking.connect(receivers.tracking_received, dispatch_uid="marketing.tracking_received")
        # Deliveries belong in a subscriber's data download and go with an erasure.
        exports.register_section("deliveries", data_rights.deliveries)
        exports.register_erasure_hook(data_rights.deliveries_erase)
