"""Model aliases through the chat API (Django's test client): an alias is answered by its target, responses name
the model that really answered, admin aliases win over the environment's, and broken aliases are clear 400s."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from assistant_chat.models import Assistant, ModelAlias

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = [{"role": "user", "content": "How do otters open shellfish?"}]
CHAT = "/assistant/chat/books"
COMPLETIONS = "/assistant/chat/books/chat/completions"


def post(client: Client, key: str, path: str, body: Any) -> Any:
    return client.post(path, json.dumps(body), content_type="application/json", HTTP_API_KEY=key)


@pytest.fixture(autouse=True)
def no_openai(settings: Any) -> None:
    settings.OPENAI_API_KEY = ""
    settings.MODEL_ALIASES = ()


@pytest.mark.parametrize("model", [None, "gpt-4o"])
def test_an_admin_alias_answers_the_sdk_default_and_names_the_real_model(
    client: Client, key: str, assistant: Assistant, model: str | None
) -> None:
    ModelAlias.objects.create(alias="gpt-4o", target="offline")
    body: dict[str, Any] = {"messages": QUESTION, **({"model": model} if model else {})}
    chat = post(client, key, CHAT, body)
    assert chat.status_code == 200, chat.content
    assert chat.json()["model"] == "offline-extractive-1"
    assert "rocks" in chat.json()["message"]["content"]
    completion = post(client, key, COMPLETIONS, {**body, "model": "gpt-4o"})
    assert completion.status_code == 200, completion.content
    assert completion.json()["model"] == "offline-extractive-1"


def test_an_environment_alias_works_the_same(client: Client, key: str, assistant: Assistant, settings: Any) -> None:
    settings.MODEL_ALIASES = (("gpt-4o", "offline"),)
    response = post(client, key, CHAT, {"messages": QUESTION, "model": "gpt-4o"})
    assert response.status_code == 200, response.content
    assert response.json()["model"] == "offline-extractive-1"


def test_the_admin_alias_wins_over_the_environment(
    client: Client, key: str, assistant: Assistant, settings: Any
) -> None:
    settings.MODEL_ALIASES = (("gpt-4o", "nowhere"),)
    ModelAlias.objects.create(alias="gpt-4o", target="offline")
    response = post(client, key, CHAT, {"messages": QUESTION, "model": "gpt-4o"})
    assert response.status_code == 200, response.content


def test_without_an_alias_the_default_model_still_needs_its_key(client: Client, key: str, assistant: Assistant) -> None:
    response = post(client, key, CHAT, {"messages": QUESTION, "model": "gpt-4o"})
    assert response.status_code == 400
    assert "set OPENAI_API_KEY" in response.json()["error"]["message"]


def test_a_disabled_alias_is_not_followed(client: Client, key: str, assistant: Assistant) -> None:
    ModelAlias.objects.create(alias="gpt-4o", target="offline", enabled=False)
    response = post(client, key, CHAT, {"messages": QUESTION, "model": "gpt-4o"})
    assert response.status_code == 400
    assert "set OPENAI_API_KEY" in response.json()["error"]["message"]


@pytest.mark.parametrize("path", [CHAT, COMPLETIONS])
def test_an_alias_cycle_is_a_clear_400(client: Client, key: str, assistant: Assistant, path: str) -> None:
    # Saved around the admin form's check (the environment and the admin may disagree later, too).
    ModelAlias.objects.create(alias="gpt-4o", target="house")
    ModelAlias.objects.create(alias="house", target="gpt-4o")
    response = post(client, key, path, {"messages": QUESTION, "model": "gpt-4o", "stream": True})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_ARGUMENT"
    assert "Model aliases form a cycle: gpt-4o -> house -> gpt-4o" in response.json()["error"]["message"]


def test_an_alias_to_an_unknown_model_is_a_clear_400(client: Client, key: str, assistant: Assistant) -> None:
    ModelAlias.objects.create(alias="gpt-4o", target="llama-removed")
    response = post(client, key, CHAT, {"messages": QUESTION})  # the default, gpt-4o... is offline without a key
    assert response.status_code == 200  # the default without a key is the offline model itself, not gpt-4o
    response = post(client, key, CHAT, {"messages": QUESTION, "model": "gpt-4o"})
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert 'Model alias "gpt-4o" points to "llama-removed", which is not a configured model' in message


def test_an_alias_may_not_name_itself_in_the_database() -> None:
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        ModelAlias.objects.create(alias="gpt-4o", target="gpt-4o")
