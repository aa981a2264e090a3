from django.apps import AppConfig
from django.db.models.signals import post_migrate


class SchedulesConfig(AppConfig):
    name = "schedules"
    verbose_name = "Schedules"

    def ready(self) -> None:
        from schedules.services import schedules_sync_code

        # The schedules declared with @mission become rows when the database is migrated
        # (and again on every scheduler tick, so a deploy without migrations picks them up).
        post_migrate.connect(
            lambda **kwargs: schedules_sync_code(), sender=self, weak=False, dispatch_uid=__name__
        )
