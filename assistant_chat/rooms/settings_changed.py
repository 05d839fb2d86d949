"""Telling a room's members, live, that staff changed its settings (name, model, temperature, filter, reply mode).

A `post_save` receiver on Room (connected by `apps.RoomsConfig.ready`, so in every process that saves rooms: the
admin, commands, Daphne) sends, once the change is committed, one `room.updated` event with the new header data to
the room's group; every process's hub writes it to its local sockets. Nothing is stored; a member who misses it
(offline) reads the same data when the page loads. Imports the domain core, `events` and the group's name.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.db.models.signals import post_save

from ..models import Room
from . import events
from .fanout import room_group

logger = logging.getLogger(__name__)


def _room_saved(sender: Any, instance: Room, created: bool, **kwargs: Any) -> None:
    if created:
        return  # nobody is in a room that did not exist
    room_id = instance.pk
    transaction.on_commit(lambda: announce(room_id=room_id))


def announce(*, room_id: int) -> None:
    """Send the room's current settings to everyone in it (called after the commit; a failure only logs)."""
    room = Room.objects.select_related("assistant").filter(pk=room_id, archived=False).first()
    layer = get_channel_layer()
    if room is None or layer is None:
        return  # archived or deleted: `access` closes its sockets
    frame = events.encode(events.room_updated(room))
    try:
        async_to_sync(layer.group_send)(room_group(room_id), {"type": "room.event", "frame": frame})
    except Exception as exc:  # members see the new settings on their next page load
        logger.warning("could not announce room %s's new settings: %s", room_id, exc)


def connect() -> None:
    post_save.connect(_room_saved, sender=Room, dispatch_uid="assistant_chat.rooms.settings_changed")
