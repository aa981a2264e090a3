"""The admin's "Recent actions" log named API tokens by their whole key: keep a prefix only."""

from django.db import migrations

TOKEN_PREFIX_LENGTH = 6
TOKEN_MODELS = (("authtoken", "token"), ("authtoken", "tokenproxy"))


def keep_key_prefixes(apps, schema_editor) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    LogEntry = apps.get_model("admin", "LogEntry")
    for app_label, model in TOKEN_MODELS:
        content_type = ContentType.objects.filter(app_label=app_label, model=model).first()
        if content_type is None:
            continue
        for entry in LogEntry.objects.filter(content_type=content_type):
            entry.object_repr = f"{entry.object_repr[:TOKEN_PREFIX_LENGTH]}…"
            entry.save(update_fields=["object_repr"])


class Migration(migrations.Migration):
    dependencies = [
        ("studiox", "0001_initial"),
        ("admin", "0003_logentry_add_action_flag_choices"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(keep_key_prefixes, migrations.RunPython.noop)]
