from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("assistant/", include("assistant_chat.api.urls")),
    path("", include("assistant_chat.urls")),
]
