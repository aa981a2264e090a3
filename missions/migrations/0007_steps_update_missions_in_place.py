from django.db import migrations

# Room on each page of the missions table for a row's next version, so that a lease or a
# checkpoint, which change no indexed column, is a HOT update (no index writes). PostgreSQL only.
FILLFACTOR = 70


def set_fillfactor(apps, schema_editor, value: int | None) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    table = schema_editor.quote_name(apps.get_model("missions", "Mission")._meta.db_table)
    if value is None:
        schema_editor.execute(f"ALTER TABLE {table} RESET (fillfactor)")
    else:
        schema_editor.execute(f"ALTER TABLE {table} SET (fillfactor = {value})")


class Migration(migrations.Migration):
    dependencies = [("missions", "0006_flow_control_and_outcomes")]

    operations = [
        migrations.RemoveIndex(model_name="mission", name="mission_lease_idx"),
        migrations.RunPython(
            lambda apps, editor: set_fillfactor(apps, editor, FILLFACTOR),
            lambda apps, editor: set_fillfactor(apps, editor, None),
        ),
    ]
