from django.apps import AppConfig


class AssistantChatConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "assistant_chat"
    verbose_name = "Assistant chat"
