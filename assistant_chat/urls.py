from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("rooms/<slug:slug>/", views.room, name="room"),
    path("rooms/<slug:slug>/files/<str:file_id>/", views.room_file, name="room-file"),
    path("rooms/<slug:slug>/search/", views.room_search, name="room-search"),
    path(
        "rooms/<slug:slug>/conversations/<int:conversation_id>/messages/",
        views.conversation_messages,
        name="conversation-messages",
    ),
    path("rooms/<slug:slug>/messages/<int:message_id>.json", views.message_detail, name="message-detail"),
    path(
        "rooms/<slug:slug>/conversations/<int:conversation_id>/export.json",
        views.conversation_export_json,
        name="conversation-export-json",
    ),
    path(
        "rooms/<slug:slug>/conversations/<int:conversation_id>/export.md",
        views.conversation_export_markdown,
        name="conversation-export-md",
    ),
]
