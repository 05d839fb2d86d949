"""The chat endpoints' one-query door (`selectors.api_key_authenticate_for`): the same answers as the ORM door of
the other endpoints, in the same order of errors, with nothing cached between requests."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from assistant_chat import errors, selectors, services
from assistant_chat.models import ApiKey, Assistant, ModelEndpoint

pytestmark = pytest.mark.django_db

QUESTION = [{"role": "user", "content": "How do otters open shellfish?"}]


def post(client: Client, key: str, path: str, body: Any) -> Any:
    return client.post(path, json.dumps(body), content_type="application/json", HTTP_API_KEY=key)


def test_the_assistant_comes_with_every_field_converted() -> None:
    assistant = services.assistant_create(name="books", instructions="Be brief.", metadata={"team": "x"})
    _key, raw = services.api_key_create(name="k")
    access = selectors.api_key_authenticate_for(raw_key=f" {raw} ", name="books")
    found = selectors.assistant_get_for_access(access=access, name="books")
    expected = Assistant.objects.get(pk=assistant.pk)
    for field in Assistant._meta.concrete_fields:
        assert getattr(found, field.attname) == getattr(expected, field.attname), field.name
    assert found.metadata == {"team": "x"} and found.created_at.tzinfo is not None
    assert not found._state.adding  # a saved row, as the ORM would give


def test_one_query_for_key_scope_and_assistant() -> None:
    services.assistant_create(name="books")
    key, raw = services.api_key_create(name="k")
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())  # touched recently: no write
    with CaptureQueriesContext(connection) as queries:
        selectors.api_key_authenticate_for(raw_key=raw, name="books")
    assert len(queries) == 1


def test_use_is_recorded() -> None:
    key, raw = services.api_key_create(name="k")
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now() - timedelta(hours=1))
    selectors.api_key_authenticate_for(raw_key=raw, name="anything")
    key.refresh_from_db()
    assert key.last_used_at is not None and timezone.now() - key.last_used_at < timedelta(minutes=1)


@pytest.mark.parametrize("raw", [None, "", "pcl_wrong"])
def test_unknown_key(raw: str | None) -> None:
    with pytest.raises(errors.Unauthenticated):
        selectors.api_key_authenticate_for(raw_key=raw, name="books")


def test_revoked_key_is_refused_at_once() -> None:
    key, raw = services.api_key_create(name="k")
    selectors.api_key_authenticate_for(raw_key=raw, name="books")
    ApiKey.objects.filter(pk=key.pk).update(revoked=True)
    with pytest.raises(errors.Unauthenticated):
        selectors.api_key_authenticate_for(raw_key=raw, name="books")


def test_scope() -> None:
    books, other = services.assistant_create(name="books"), services.assistant_create(name="other")
    _key, raw = services.api_key_create(name="k", assistants=[books])
    access = selectors.api_key_authenticate_for(raw_key=raw, name="books")
    assert selectors.assistant_get_for_access(access=access, name="books").pk == books.pk
    # Outside the scope, and a name that does not exist, read the same: the key learns nothing.
    for name in (other.name, "nope"):
        access = selectors.api_key_authenticate_for(raw_key=raw, name=name)
        with pytest.raises(errors.PermissionDenied):
            selectors.assistant_get_for_access(access=access, name=name)
    # An unrestricted key: existing or not found.
    _key, open_raw = services.api_key_create(name="open")
    access = selectors.api_key_authenticate_for(raw_key=open_raw, name="other")
    assert selectors.assistant_get_for_access(access=access, name="other").pk == other.pk
    with pytest.raises(errors.NotFound):
        selectors.assistant_get_for_access(
            access=selectors.api_key_authenticate_for(raw_key=open_raw, name="nope"), name="nope"
        )


def test_a_terminating_assistant_is_gone_and_purged() -> None:
    books = services.assistant_create(name="books")
    Assistant.objects.filter(pk=books.pk).update(status=Assistant.Status.TERMINATING, deleted_at=timezone.now())
    _key, raw = services.api_key_create(name="k")
    with pytest.raises(errors.NotFound):
        selectors.assistant_get_for_access(
            access=selectors.api_key_authenticate_for(raw_key=raw, name="books"), name="books"
        )
    assert not Assistant.objects.filter(pk=books.pk).exists()


def test_errors_keep_their_order(client: Client) -> None:
    _key, scoped = services.api_key_create(name="scoped", assistants=[services.assistant_create(name="books")])
    # Key before body, body before assistant.
    assert post(client, "pcl_wrong", "/assistant/chat/nope", {"messages": "x"}).status_code == 401
    response = client.post("/assistant/chat/nope", "{", content_type="application/json", HTTP_API_KEY=scoped)
    assert response.status_code == 400
    assert post(client, scoped, "/assistant/chat/nope", {"messages": QUESTION}).status_code == 403


def test_a_new_model_endpoint_applies_to_the_next_turn(client: Client, settings: Any) -> None:
    settings.PROVIDER_MAX_RETRIES = 0
    services.assistant_create(name="books")
    _key, raw = services.api_key_create(name="k")
    body = {"messages": QUESTION, "model": "local"}
    assert post(client, raw, "/assistant/chat/books/chat/completions", body).status_code == 400
    ModelEndpoint.objects.create(model_id="local", base_url="http://127.0.0.1:9/v1", upstream_model="m")
    response = post(client, raw, "/assistant/chat/books/chat/completions", body)
    assert response.status_code == 502  # known now; nothing listens on port 9
    ModelEndpoint.objects.filter(model_id="local").update(enabled=False)
    assert post(client, raw, "/assistant/chat/books/chat/completions", body).status_code == 400
