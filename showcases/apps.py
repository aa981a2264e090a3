from importlib import import_module

from django.apps import AppConfig

# Each module registers its missions with @mission when imported.
SHOWCASE_MISSION_MODULES = (
    "showcases.refund.mission",
    "showcases.reconciliation.mission",
    "showcases.delivery.mission",
)


class ShowcasesConfig(AppConfig):
    name = "showcases"
    verbose_name = "Showcases"

    def ready(self) -> None:
        for module_name in SHOWCASE_MISSION_MODULES:
            import_module(module_name)
