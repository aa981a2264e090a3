from django.apps import AppConfig


class StudioxConfig(AppConfig):
    name = "studiox"
    verbose_name = "StudioX"
