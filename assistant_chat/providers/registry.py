"""The model registry: which model ids exist, which provider serves each, and whether it is configured.

Built by the turn engine from settings (keys, base URLs, `MODEL_ALIASES`) and the admin-registered endpoints and
aliases, passed in as plain data; imports nothing from Django. `resolve` is the one place a model id becomes a
provider, aliases followed ("gpt-4o" answered by "offline" on a machine with no OpenAI key).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .anthropic import AnthropicProvider
from .base import Provider, ProviderNotConfigured
from .gemini import GeminiProvider
from .offline import MODEL_ID as OFFLINE_MODEL_ID
from .offline import OfflineProvider
from .openai import OpenAIProvider
from .pinecone import PineconeAssistantProvider

OFFLINE = "offline"


@dataclass(frozen=True)
class ModelSpec:
    id: str  # what clients send and rooms store
    provider: str  # openai | anthropic | gemini | openai_compatible | pinecone | offline
    upstream_model: str
    accepts_temperature: bool = True
    temperature_max: float = 2.0
    label: str = ""
    endpoint: str = ""  # admin-registered endpoints: their base URL


SEED_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("gpt-4o", "openai", "gpt-4o", label="GPT-4o (OpenAI)"),
    ModelSpec("gpt-4.1", "openai", "gpt-4.1", label="GPT-4.1 (OpenAI)"),
    ModelSpec("o4-mini", "openai", "o4-mini", accepts_temperature=False, label="o4-mini (OpenAI, reasoning)"),
    ModelSpec("gpt-5", "openai", "gpt-5", accepts_temperature=False, label="GPT-5 (OpenAI, reasoning)"),
    ModelSpec(
        "claude-3-5-sonnet", "anthropic", "claude-3-5-sonnet-latest", temperature_max=1.0, label="Claude 3.5 Sonnet"
    ),
    ModelSpec(
        "claude-3-7-sonnet", "anthropic", "claude-3-7-sonnet-latest", temperature_max=1.0, label="Claude 3.7 Sonnet"
    ),
    ModelSpec("claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5", temperature_max=1.0, label="Claude Sonnet 4.5"),
    ModelSpec("gemini-2.5-pro", "gemini", "gemini-2.5-pro", label="Gemini 2.5 Pro (Google)"),
    ModelSpec(OFFLINE, "offline", OFFLINE_MODEL_ID, label="Built-in offline model (quotes your files, no key needed)"),
)
ALIASES = {OFFLINE_MODEL_ID: OFFLINE}
REMOTE_DEFAULT = "gpt-4o"  # what Pinecone answers with when a chat names no model

HttpProvider = OpenAIProvider | AnthropicProvider | GeminiProvider
HTTP_PROVIDERS: dict[str, type[HttpProvider]] = {
    "openai": OpenAIProvider,
    "anthropic": AnthropicProvider,
    "gemini": GeminiProvider,
}
KEY_VARIABLES = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "gemini": "GEMINI_API_KEY"}


@dataclass(frozen=True)
class CustomEndpoint:
    """A model staff registered in the admin, served by an OpenAI-compatible server (vLLM, Ollama, llama.cpp)."""

    model_id: str
    base_url: str
    upstream_model: str
    api_key: str = ""
    accepts_temperature: bool = True
    temperature_max: float = 2.0
    label: str = ""


@dataclass(frozen=True)
class ProviderSettings:
    offline_words_per_second: float = 0.0  # 0: as fast as the event loop allows
    openai_api_key: str = ""
    openai_base_url: str = "https://api.openai.com/v1"
    anthropic_api_key: str = ""
    anthropic_base_url: str = "https://api.anthropic.com"
    gemini_api_key: str = ""
    gemini_base_url: str = "https://generativelanguage.googleapis.com"
    pinecone_api_key: str = ""
    pinecone_host: str = ""
    connect_timeout: float = 10.0
    read_timeout: float = 300.0
    max_retries: int = 3
    custom: tuple[CustomEndpoint, ...] = field(default_factory=tuple)
    # (alias, target) pairs: the environment's first, then the admin's, which win for the same alias.
    aliases: tuple[tuple[str, str], ...] = field(default_factory=tuple)


class UnknownModel(ValueError):
    pass


class ModelUnavailable(ValueError):
    pass


class AliasError(UnknownModel):
    """An alias that leads nowhere: its target is no configured model, or the aliases go round in a cycle."""


def parse_aliases(text: str) -> tuple[tuple[str, str], ...]:
    """`MODEL_ALIASES` ("gpt-4o=offline,gpt-4o-mini=ollama-llama3") as (alias, target) pairs; ValueError says
    which entry is malformed."""
    pairs: dict[str, str] = {}
    for entry in text.split(","):
        if not entry.strip():
            continue
        alias, sep, target = (part.strip() for part in entry.partition("="))
        if not sep or not alias or not target:
            raise ValueError(f'MODEL_ALIASES entry "{entry.strip()}" is not of the form alias=target')
        if alias == target:
            raise ValueError(f'MODEL_ALIASES entry "{entry.strip()}" maps a model to itself')
        pairs[alias] = target
    return tuple(pairs.items())


class Registry:
    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        self.models: dict[str, ModelSpec] = {spec.id: spec for spec in SEED_MODELS}
        for endpoint in settings.custom:
            self.models[endpoint.model_id] = ModelSpec(
                endpoint.model_id,
                "openai_compatible",
                endpoint.upstream_model,
                accepts_temperature=endpoint.accepts_temperature,
                temperature_max=endpoint.temperature_max,
                label=endpoint.label or f"{endpoint.upstream_model} at {endpoint.base_url}",
                endpoint=endpoint.base_url,
            )
        self._custom = {endpoint.model_id: endpoint for endpoint in settings.custom}
        self.aliases: dict[str, str] = dict(settings.aliases)

    def default_id(self) -> str:
        """gpt-4o where OpenAI is configured, otherwise the offline model."""
        return "gpt-4o" if self.settings.openai_api_key else OFFLINE

    def unavailable_reason(self, spec: ModelSpec) -> str | None:
        variable = KEY_VARIABLES.get(spec.provider)
        if variable and not getattr(self.settings, f"{spec.provider}_api_key"):
            return f'Model "{spec.id}" is unavailable: its provider is not configured (set {variable})'
        return None

    def target(self, model_id: str) -> str:
        """The model id that answers for `model_id`, staff and environment aliases followed (an alias may name
        another alias); raises AliasError for a cycle or a target that is no configured model, UnknownModel for an
        id that is neither a model nor an alias."""
        chain = [model_id]
        while chain[-1] in self.aliases:
            following = self.aliases[chain[-1]]
            if following in chain:
                raise AliasError(f"Model aliases form a cycle: {' -> '.join([*chain, following])}")
            chain.append(following)
        wanted = chain[-1]
        if wanted not in self.models:
            if len(chain) > 1:
                raise AliasError(
                    f'Model alias "{chain[-2]}" points to "{wanted}", which is not a configured model. '
                    f"Available models: {', '.join(self.choices())}"
                )
            raise UnknownModel(f'Unknown model "{model_id}". Available models: {", ".join(self.choices())}')
        return wanted

    def spec(self, model_id: str | None) -> ModelSpec:
        """The spec that answers for a requested id (None: the default), available or not."""
        wanted = ALIASES.get(model_id or "", model_id) or self.default_id()
        return self.models[self.target(wanted)]

    def resolve(self, model_id: str | None) -> ModelSpec:
        """The spec that answers for a requested id (None: the default), aliases followed; raises UnknownModel
        (AliasError for an alias that leads nowhere) or ModelUnavailable."""
        spec = self.spec(model_id)
        reason = self.unavailable_reason(spec)
        if reason:
            raise ModelUnavailable(reason)
        return spec

    def resolve_remote(self, model_id: str | None) -> ModelSpec:
        """The spec for a chat answered by a remote Pinecone assistant, which runs the model itself: no local key is
        needed, and an id the remote does not serve is for it to refuse (its 400 comes back as ours). None is
        Pinecone's default, gpt-4o. Temperature rules are those of the seed model of that id, where there is one.
        Local aliases do not apply: they name this server's models, and the remote runs its own."""
        wanted = ALIASES.get(model_id or "", model_id) or REMOTE_DEFAULT
        seed = next((spec for spec in SEED_MODELS if spec.id == wanted), None)
        label = f"{wanted} (through the remote Pinecone assistant)"
        # Pinecone names its models by these ids, not by the vendors' own names.
        if seed is None:
            return ModelSpec(wanted, "pinecone", wanted, label=label)
        return replace(seed, provider="pinecone", upstream_model=wanted, label=label)

    def choices(self) -> list[str]:
        """Every model id a client may send: the models, then the aliases."""
        return list(self.models) + [alias for alias in self.aliases if alias not in self.models]

    def provider(self, spec: ModelSpec) -> Provider:
        """A provider instance for the spec (cheap to build; one per turn)."""
        s = self.settings
        if spec.provider == "offline":
            return OfflineProvider(words_per_second=s.offline_words_per_second)
        if spec.provider == "openai_compatible":
            endpoint = self._custom[spec.id]
            cls: type[HttpProvider] = OpenAIProvider
            name, base_url, api_key = spec.id, endpoint.base_url, endpoint.api_key or None
        elif spec.provider in HTTP_PROVIDERS:
            cls, name = HTTP_PROVIDERS[spec.provider], spec.provider
            base_url = getattr(s, f"{spec.provider}_base_url")
            api_key = getattr(s, f"{spec.provider}_api_key")
        else:
            raise ProviderNotConfigured(f"No provider for {spec.provider}")
        return cls(
            name,
            base_url,
            api_key,
            timeout=s.read_timeout,
            connect_timeout=s.connect_timeout,
            max_retries=s.max_retries,
        )

    def remote_assistant(self, assistant_name: str, metadata_filter: dict | None = None) -> Provider:
        """The provider for an assistant backed by a remote Pinecone assistant of that name."""
        s = self.settings
        if not (s.pinecone_api_key and s.pinecone_host):
            raise ModelUnavailable(
                "This assistant is remote but Pinecone is not configured (set PINECONE_API_KEY and PINECONE_ASSISTANT_HOST)"
            )
        return PineconeAssistantProvider(
            "pinecone",
            s.pinecone_host,
            s.pinecone_api_key,
            assistant_name,
            filter=metadata_filter,
            connect_timeout=s.connect_timeout,
            timeout=s.read_timeout,
            max_retries=s.max_retries,
        )
