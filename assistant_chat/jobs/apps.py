from django.apps import AppConfig
from django_tasks_db.apps import TasksAppConfig


class JobsConfig(AppConfig):
    name = "assistant_chat.jobs"
    label = "jobs"
    verbose_name = "Background jobs"
    default_auto_field = "django.db.models.BigAutoField"


class JobQueueConfig(TasksAppConfig):
    """django-tasks-db's app under the name staff see in the admin (its label and tables are unchanged)."""

    verbose_name = "Job queue"
