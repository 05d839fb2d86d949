"""The live room as a Django app of its own, so that its signal receivers (`access`) are connected in every
process that changes data, without the domain core importing the room."""

from django.apps import AppConfig


class RoomsConfig(AppConfig):
    name = "assistant_chat.rooms"
    label = "assistant_chat_rooms"
    verbose_name = "Assistant chat rooms"

    def ready(self) -> None:
        from . import access, settings_changed

        access.connect()
        settings_changed.connect()
