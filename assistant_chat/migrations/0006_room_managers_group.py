"""The "Room managers" group: staff in it configure rooms and review their conversations and usage in the admin."""

from django.db import migrations

GROUP = "Room managers"
PERMISSIONS = [
    ("room", "add_room"),
    ("room", "change_room"),
    ("room", "view_room"),
    ("room", "manage_rooms"),
    ("conversation", "view_conversation"),
    ("message", "view_message"),
    ("usage", "view_usage"),
]


def create_group(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations; make sure this app's exist now (a fresh database).
    app_config = apps.get_app_config("assistant_chat")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=GROUP)
    for model, codename in PERMISSIONS:
        permission = Permission.objects.get(
            content_type__app_label="assistant_chat", content_type__model=model, codename=codename
        )
        group.permissions.add(permission)


def remove_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("assistant_chat", "0005_conversation_review"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_group, remove_group)]
