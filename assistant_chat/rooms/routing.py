"""Websocket routes. The only importer of `consumer`: nothing outside this package reaches the socket."""

from django.urls import path

from .consumer import RoomConsumer

websocket_urlpatterns = [
    path("ws/rooms/<slug:slug>/", RoomConsumer.as_asgi()),
]
