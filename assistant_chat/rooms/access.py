"""Who may keep a room socket open, and telling every process when that may have changed.

`authorise` reads the socket's session, its user and the room afresh: the consumer calls it for every frame and
whenever its hub says access may have changed. The receivers here (connected by `apps.RoomsConfig.ready`, so in
every process that changes data: Daphne, the admin, management commands) announce, once the change is committed,
removals from a room or a group, a room archived or deleted, logouts, deactivations, password and permission
changes to CONTROL_GROUP, which every process's fan-out is in; each process has the affected sockets call
`authorise` again, and those that lost access close (4401 signed out, 4403 no longer a member). The receivers only
announce: the decision is `authorise`, the same door as every frame. Imports the domain core and `fanout`'s group
name; nothing imports this but the consumer and the app config.
"""

from __future__ import annotations

import logging
from importlib import import_module
from types import SimpleNamespace
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib import auth
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

from .. import errors, selectors
from ..models import Room
from .fanout import CONTROL_GROUP

logger = logging.getLogger(__name__)


def authorise(*, scope: dict[str, Any], user: Any, room_id: int) -> tuple[Any, Room]:
    """The socket's member as the database has them now, and the room through the one door. Raises
    `Unauthenticated` when the session ended (logout, password change, deactivation) and `NotFound` when the member
    may no longer enter the room."""
    fresh = session_user(scope, user)
    return fresh, selectors.room_get_for_user(user=fresh, room_id=room_id)


def session_key(scope: dict[str, Any]) -> str | None:
    return getattr(scope.get("session"), "session_key", None)


def session_user(scope: dict[str, Any], user: Any) -> Any:
    """Django's own check of a session (`auth.get_user`: the user exists and is active, and the session's hash
    matches the password), on a fresh read of the session: the socket's copy was loaded at connect."""
    session = scope.get("session")
    key = getattr(session, "session_key", None)
    user_id = getattr(user, "pk", None)
    if user_id is None:
        raise errors.Unauthenticated("You are signed out.")
    if key is None:
        # No session (tests that put a user in the scope directly): the user's row, read again.
        row = get_user_model().objects.filter(pk=user_id).first()
        if row is None or not row.is_active:
            raise errors.Unauthenticated("You are signed out.")
        return row
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key=key)
    fresh: Any = auth.get_user(SimpleNamespace(session=store))  # type: ignore[arg-type]
    if not fresh.is_authenticated or fresh.pk != user_id:
        raise errors.Unauthenticated("You are signed out.")
    return fresh


# --- announcing changes -------------------------------------------------------------------------------------------


def announce(*, users: Any = (), rooms: Any = (), everyone: bool = False, sessions: Any = ()) -> None:
    """Tell every process that access may have changed for these users / rooms (after the commit). `sessions`
    names sessions that ended (a logout): their sockets close without a check, since the session row may still
    be there when the message arrives (Django deletes it after the logout signal)."""
    message = {
        "type": "access.recheck",
        "users": sorted(users),
        "rooms": sorted(rooms),
        "all": everyone,
        "sessions": sorted(sessions),
    }
    transaction.on_commit(lambda: _send(message))


def _send(message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(CONTROL_GROUP, message)
    except Exception as exc:  # the sockets' next frame checks again
        logger.warning("could not announce an access change to the rooms: %s", exc)


def _membership_changed(sender: Any, instance: Any, action: str, reverse: bool, pk_set: Any, **kwargs: Any) -> None:
    """A room's members or groups lost someone (or a user lost rooms)."""
    if action not in ("post_remove", "post_clear"):
        return
    if isinstance(instance, Room):
        announce(rooms=[instance.pk])
    elif isinstance(instance, Group):  # group.chat_rooms.remove(room): pk_set names the rooms
        announce(rooms=pk_set or (), everyone=not pk_set)
    else:  # user.chat_rooms.remove(room)
        announce(users=[instance.pk])


def _user_groups_changed(sender: Any, instance: Any, action: str, reverse: bool, pk_set: Any, **kwargs: Any) -> None:
    """A user left a group (or a group lost users, or permissions): the rooms reached through it may be gone."""
    if action not in ("post_remove", "post_clear"):
        return
    if isinstance(instance, Group):
        announce(users=pk_set or (), everyone=not pk_set)
    else:
        announce(users=[instance.pk])


def _group_permissions_changed(sender: Any, action: str, **kwargs: Any) -> None:
    if action in ("post_remove", "post_clear"):
        announce(everyone=True)  # who may manage every room; rare


def _room_saved(sender: Any, instance: Room, created: bool, **kwargs: Any) -> None:
    if not created:
        announce(rooms=[instance.pk])  # archived, or anything else that may close it


def _room_deleted(sender: Any, instance: Room, **kwargs: Any) -> None:
    announce(rooms=[instance.pk])


def _user_saved(sender: Any, instance: Any, created: bool, update_fields: Any = None, **kwargs: Any) -> None:
    if created or (update_fields is not None and set(update_fields) <= {"last_login"}):
        return  # a new user, or a login stamping last_login: nothing was taken away
    announce(users=[instance.pk])  # deactivated, password changed, staff rights changed


def _user_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    announce(users=[instance.pk])


def _group_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    announce(everyone=True)


def _logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    key = getattr(getattr(request, "session", None), "session_key", None)
    if user is not None and getattr(user, "pk", None) is not None:
        announce(users=[user.pk], sessions=[key] if key else ())


def connect() -> None:
    user_model = get_user_model()
    uid = "assistant_chat.rooms.access"
    m2m_changed.connect(_membership_changed, sender=Room.members.through, dispatch_uid=f"{uid}.members")
    m2m_changed.connect(_membership_changed, sender=Room.member_groups.through, dispatch_uid=f"{uid}.groups")
    m2m_changed.connect(_user_groups_changed, sender=user_model.groups.through, dispatch_uid=f"{uid}.user_groups")
    m2m_changed.connect(
        _user_groups_changed, sender=user_model.user_permissions.through, dispatch_uid=f"{uid}.user_permissions"
    )
    m2m_changed.connect(_group_permissions_changed, sender=Group.permissions.through, dispatch_uid=f"{uid}.perms")
    post_save.connect(_room_saved, sender=Room, dispatch_uid=f"{uid}.room_saved")
    post_delete.connect(_room_deleted, sender=Room, dispatch_uid=f"{uid}.room_deleted")
    post_save.connect(_user_saved, sender=user_model, dispatch_uid=f"{uid}.user_saved")
    post_delete.connect(_user_deleted, sender=user_model, dispatch_uid=f"{uid}.user_deleted")
    post_delete.connect(_group_deleted, sender=Group, dispatch_uid=f"{uid}.group_deleted")
    user_logged_out.connect(_logged_out, dispatch_uid=f"{uid}.logged_out")
