"""The registry's model aliases: resolution in one place, chains followed, cycles and dead ends refused clearly."""

from __future__ import annotations

import pytest

from assistant_chat.providers.registry import (
    AliasError,
    CustomEndpoint,
    ModelUnavailable,
    ProviderSettings,
    Registry,
    UnknownModel,
    parse_aliases,
)

LLAMA = CustomEndpoint(model_id="llama-local", base_url="http://127.0.0.1:9/v1", upstream_model="llama3")


def registry(*aliases: tuple[str, str], openai_key: str = "") -> Registry:
    return Registry(ProviderSettings(openai_api_key=openai_key, custom=(LLAMA,), aliases=aliases))


def test_an_alias_is_answered_by_its_target() -> None:
    reg = registry(("gpt-4o", "offline"), ("gpt-4o-mini", "llama-local"))
    assert reg.resolve("gpt-4o").id == "offline"
    assert reg.resolve("gpt-4o").upstream_model == "offline-extractive-1"  # what answers name
    assert reg.resolve("gpt-4o-mini").upstream_model == "llama3"
    assert reg.resolve("offline").id == "offline"  # an id that is no alias resolves as before


def test_an_alias_replaces_a_model_that_would_be_unavailable() -> None:
    with pytest.raises(ModelUnavailable, match="set OPENAI_API_KEY"):
        registry().resolve("gpt-4o")
    assert registry(("gpt-4o", "offline")).resolve("gpt-4o").id == "offline"
    with pytest.raises(ModelUnavailable, match="set OPENAI_API_KEY"):
        registry(("gpt-4o", "offline")).resolve("gpt-4.1")  # only the alias is answered elsewhere


def test_the_default_follows_aliases_too() -> None:
    # With a key the default is gpt-4o; an alias of gpt-4o then decides who answers a request naming no model.
    assert registry(("gpt-4o", "llama-local"), openai_key="sk-x").resolve(None).id == "llama-local"
    assert registry().resolve(None).id == "offline"


def test_chains_are_followed() -> None:
    reg = registry(("house", "gpt-4o"), ("gpt-4o", "offline"))
    assert reg.resolve("house").id == "offline"
    assert reg.target("house") == "offline"


def test_a_cycle_is_a_clear_error() -> None:
    reg = registry(("a", "b"), ("b", "c"), ("c", "a"))
    with pytest.raises(AliasError, match="Model aliases form a cycle: a -> b -> c -> a"):
        reg.resolve("a")


def test_an_alias_to_nothing_is_a_clear_error() -> None:
    reg = registry(("gpt-4o", "llama-gone"))
    with pytest.raises(AliasError, match='alias "gpt-4o" points to "llama-gone", which is not a configured model'):
        reg.resolve("gpt-4o")
    assert isinstance(AliasError("x"), UnknownModel)  # the API answers it as an unknown model: a 400


def test_an_unknown_id_lists_aliases_among_the_choices() -> None:
    reg = registry(("house", "offline"))
    with pytest.raises(UnknownModel, match='Unknown model "gpt-7".*house'):
        reg.resolve("gpt-7")


def test_remote_assistants_ignore_local_aliases() -> None:
    # The remote Pinecone runs its own gpt-4o; a local alias names a local model it does not have.
    assert registry(("gpt-4o", "offline")).resolve_remote("gpt-4o").upstream_model == "gpt-4o"


def test_parse_aliases() -> None:
    assert parse_aliases(" gpt-4o = offline , gpt-4o-mini=llama-local,") == (
        ("gpt-4o", "offline"),
        ("gpt-4o-mini", "llama-local"),
    )
    assert parse_aliases("") == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gpt-4o", 'entry "gpt-4o" is not of the form alias=target'),
        ("gpt-4o=", 'entry "gpt-4o=" is not of the form alias=target'),
        ("=offline", 'entry "=offline" is not of the form alias=target'),
        ("offline=offline", "maps a model to itself"),
    ],
)
def test_parse_aliases_refuses_malformed_entries(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_aliases(text)
