"""Model aliases in the admin: staff map a model id to another configured model; dead ends and cycles are refused
on the form with the registry's own words; the room form lists aliases with the model that answers for each."""

from __future__ import annotations

from typing import Any

import pytest

from assistant_chat.models import ModelAlias, ModelEndpoint
from tests.admin.conftest import room_form, superuser_client

pytestmark = pytest.mark.django_db(transaction=True)

ADD = "/admin/assistant_chat/modelalias/add/"


def alias_form(**changes: Any) -> dict[str, Any]:
    return {"alias": "gpt-4o", "target": "offline", "note": "", "enabled": "on", **changes}


def test_staff_add_an_alias(settings: Any) -> None:
    settings.OPENAI_API_KEY = ""
    _boss, client = superuser_client()
    response = client.post(ADD, alias_form(note="no OpenAI key here"))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert ModelAlias.objects.get(alias="gpt-4o").target == "offline"
    listing = client.get("/admin/assistant_chat/modelalias/").content.decode()
    assert "gpt-4o" in listing and "offline" in listing


def test_an_alias_to_an_endpoint_model(settings: Any) -> None:
    ModelEndpoint.objects.create(model_id="llama-local", base_url="http://127.0.0.1:9/v1", upstream_model="llama3")
    _boss, client = superuser_client()
    response = client.post(ADD, alias_form(alias="gpt-4o-mini", target="llama-local"))
    assert response.status_code == 302


@pytest.mark.parametrize(
    ("existing", "posted", "problem"),
    [
        ([], {"target": "llama-nowhere"}, 'points to "llama-nowhere", which is not a configured model'),
        ([("house", "gpt-4o")], {"target": "house"}, "Model aliases form a cycle: gpt-4o -> house -> gpt-4o"),
        ([], {"target": "gpt-4o"}, "An alias cannot name itself"),
    ],
)
def test_dead_ends_and_cycles_are_refused_on_the_form(existing: list, posted: dict, problem: str) -> None:
    for alias, target in existing:
        ModelAlias.objects.create(alias=alias, target=target)
    _boss, client = superuser_client()
    response = client.post(ADD, alias_form(**posted))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert problem in errors["target"][0], errors
    assert not ModelAlias.objects.filter(alias="gpt-4o").exists()


def test_an_alias_to_a_model_without_its_key_is_saved_with_a_warning(settings: Any) -> None:
    settings.ANTHROPIC_API_KEY = ""
    _boss, client = superuser_client()
    response = client.post(ADD, alias_form(alias="house", target="claude-3-7-sonnet"), follow=True)
    assert ModelAlias.objects.filter(alias="house").exists()
    assert "set ANTHROPIC_API_KEY" in response.content.decode()


def test_members_of_staff_without_the_permission_cannot_add_aliases() -> None:
    from tests.admin.conftest import login
    from tests.rooms.helpers import make_user

    clerk = make_user("clerk", is_staff=True)
    response = login(clerk).post(ADD, alias_form())
    assert response.status_code == 403
    assert not ModelAlias.objects.exists()


def test_the_room_form_lists_aliases_with_who_answers(world, settings: Any) -> None:
    settings.OPENAI_API_KEY = ""
    ModelAlias.objects.create(alias="gpt-4o", target="offline")
    _boss, client = superuser_client()
    page = client.get(f"/admin/assistant_chat/room/{world['lab'].pk}/change/")
    choices = dict(page.context["adminform"].form.fields["model"].choices)
    assert choices["gpt-4o"] == "gpt-4o → answered by offline"
    assert "unavailable" in choices["gpt-4.1"]
    response = client.post(
        f"/admin/assistant_chat/room/{world['lab'].pk}/change/", room_form(world["lab"], model="gpt-4o")
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
