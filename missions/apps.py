from django.apps import AppConfig


class MissionsConfig(AppConfig):
    name = "missions"

    def ready(self) -> None:
        from django.conf import settings

        from missions.runtime import load_mission_modules

        load_mission_modules(settings.STUDIOX_MISSION_MODULES)
