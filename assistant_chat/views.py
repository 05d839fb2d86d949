"""Thin HTML views. The home page lists the assistants a signed-in user can see; rooms arrive with the rooms issue."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .models import Assistant, File


@login_required
def home(request: HttpRequest) -> HttpResponse:
    assistants = Assistant.objects.exclude(status=Assistant.Status.TERMINATING).annotate(
        available=Count("files", filter=Q(files__status=File.Status.AVAILABLE))
    )
    return render(request, "assistant_chat/home.html", {"assistants": assistants})
