"""Runs one assistant reply (a turn): the only caller of providers.

`prepare_turn` (sync, reads the database) validates the model and temperature, retrieves the context snippets
under the filter and builds the provider request. `stream_turn` (async, no database) streams from the provider and
turns citation markers into structured citations as the text arrives. The chat API drives it now; the rooms'
turn runner will drive the same two functions. Deltas are yielded, never published from here to any socket.
"""

from __future__ import annotations

import functools
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace

from django.conf import settings
from django.db import connection

from . import errors
from .citations import Marker, MarkerParser, Text
from .knowledge import retrieval
from .knowledge.chunking import count_tokens
from .knowledge.filters import MetadataFilter
from .models import Assistant, File, ModelAlias, ModelEndpoint
from .providers import base as provider_base
from .providers.registry import (
    CustomEndpoint,
    ModelSpec,
    ModelUnavailable,
    ProviderSettings,
    Registry,
    UnknownModel,
)

SYSTEM_RULES = (
    "Answer the user's question using only the numbered sources below. After each sentence that uses a source, "
    "cite it with its number in square brackets, like [1] or [2][3]. If the sources do not contain the answer, "
    "say that you could not find it in the files. Do not invent sources."
)
JSON_RULES = 'Respond with a single JSON object, for example {"answer": "..."}, and nothing else.'


_ENDPOINT_FIELDS = (
    "model_id",
    "base_url",
    "upstream_model",
    "api_key",
    "accepts_temperature",
    "temperature_max",
    "label",
)


@functools.cache
def _endpoints_sql(vendor: str) -> str:
    quote = connection.ops.quote_name
    column = {field.name: quote(str(field.column)) for field in ModelEndpoint._meta.concrete_fields}
    columns = ", ".join(column[name] for name in _ENDPOINT_FIELDS)
    table = quote(ModelEndpoint._meta.db_table)
    return f"SELECT {columns} FROM {table} WHERE {column['enabled']} = %s ORDER BY {column['model_id']}"  # noqa: S608


def _custom_endpoints() -> tuple[CustomEndpoint, ...]:
    # A raw query: through the ORM, compiling this one SELECT cost more than half a millisecond of every turn.
    with connection.cursor() as cursor:
        cursor.execute(_endpoints_sql(connection.vendor), [True])
        rows = cursor.fetchall()
    return tuple(
        CustomEndpoint(
            model_id=model_id,
            base_url=base_url,
            upstream_model=upstream_model,
            api_key=api_key,
            accepts_temperature=bool(accepts_temperature),  # SQLite returns 0/1
            temperature_max=float(temperature_max),
            label=label,
        )
        for model_id, base_url, upstream_model, api_key, accepts_temperature, temperature_max, label in rows
    )


@functools.cache
def _aliases_sql(vendor: str) -> str:
    quote = connection.ops.quote_name
    column = {field.name: quote(str(field.column)) for field in ModelAlias._meta.concrete_fields}
    table = quote(ModelAlias._meta.db_table)
    return f"SELECT {column['alias']}, {column['target']} FROM {table} WHERE {column['enabled']} = %s"  # noqa: S608


def _aliases() -> tuple[tuple[str, str], ...]:
    """The environment's aliases, then the admin's (which win for the same alias)."""
    with connection.cursor() as cursor:
        cursor.execute(_aliases_sql(connection.vendor), [True])
        rows = cursor.fetchall()
    return tuple(settings.MODEL_ALIASES) + tuple((alias, target) for alias, target in rows)


def registry() -> Registry:
    """The registry as configured now: env keys and aliases plus the endpoints and aliases staff registered (read
    per turn, so an admin change applies to the next turn without a restart)."""
    custom = _custom_endpoints()
    return Registry(
        ProviderSettings(
            openai_api_key=settings.OPENAI_API_KEY,
            openai_base_url=settings.OPENAI_BASE_URL,
            anthropic_api_key=settings.ANTHROPIC_API_KEY,
            anthropic_base_url=settings.ANTHROPIC_BASE_URL,
            gemini_api_key=settings.GEMINI_API_KEY,
            gemini_base_url=settings.GEMINI_BASE_URL,
            pinecone_api_key=settings.PINECONE_API_KEY,
            pinecone_host=settings.PINECONE_ASSISTANT_HOST,
            connect_timeout=settings.PROVIDER_CONNECT_TIMEOUT,
            read_timeout=settings.PROVIDER_READ_TIMEOUT,
            max_retries=settings.PROVIDER_MAX_RETRIES,
            offline_words_per_second=settings.OFFLINE_MODEL_WORDS_PER_SECOND,
            custom=custom,
            aliases=_aliases(),
        )
    )


@dataclass(frozen=True)
class TurnMessage:
    role: str  # user | assistant | system
    content: str
    speaker: str = ""  # rooms name who said it; the model sees "Name: text"


@dataclass(frozen=True)
class TurnRequest:
    assistant: Assistant
    messages: list[TurnMessage]
    model: str | None = None
    temperature: float | None = None
    metadata_filter: MetadataFilter | None = None
    top_k: int = retrieval.DEFAULT_TOP_K
    snippet_size: int = retrieval.DEFAULT_SNIPPET_SIZE
    include_highlights: bool = False
    json_response: bool = False
    extra_instructions: str = ""


@dataclass(frozen=True)
class Reference:
    number: int  # the inline number, by order of first citation of its file
    file: File
    pages: tuple[int, ...]
    highlight: str | None


@dataclass(frozen=True)
class Citation:
    position: int  # character offset into the final text (markers removed)
    references: tuple[Reference, ...]

    def inline(self) -> str:
        parts = []
        for reference in self.references:
            pages = ", ".join(str(p) for p in reference.pages)
            parts.append(f"[{reference.number}, pp. {pages}]" if pages else f"[{reference.number}]")
        return "".join(parts)


@dataclass
class PreparedTurn:
    id: str
    spec: ModelSpec
    provider: provider_base.Provider
    request: provider_base.ProviderRequest
    snippets: list[retrieval.Snippet]
    temperature_used: float | None
    remote: bool = False
    json_response: bool = False
    include_highlights: bool = False
    retrieval_seconds: float = 0.0  # time spent finding the context snippets (reported as Server-Timing)


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class CitationFound:
    citation: Citation


@dataclass
class TurnResult:
    text: str
    inline_text: str
    citations: list[Citation]
    finish_reason: str
    usage: provider_base.Usage
    model: str
    first_token_seconds: float | None = None
    total_seconds: float = 0.0
    extra: dict = field(default_factory=dict)


TurnEvent = TextDelta | CitationFound | TurnResult


def check_temperature(spec: ModelSpec, temperature: object) -> float | None:
    """The temperature to send, or None; out-of-range values are the caller's error."""
    if temperature is None:
        return None
    if isinstance(temperature, bool) or not isinstance(temperature, int | float):
        raise errors.InvalidArgument("temperature must be a number")
    if not 0.0 <= float(temperature) <= 2.0:
        raise errors.InvalidArgument(f"temperature must be between 0 and 2, got {temperature}")
    if not spec.accepts_temperature:
        return None  # reasoning models ignore it, as Pinecone does
    if float(temperature) > spec.temperature_max:
        raise errors.InvalidArgument(
            f'temperature must be between 0 and {spec.temperature_max:g} for model "{spec.id}", got {temperature}'
        )
    return float(temperature)


def resolve_model(model: str | None) -> tuple[Registry, ModelSpec]:
    reg = registry()
    try:
        return reg, reg.resolve(model)
    except (UnknownModel, ModelUnavailable) as exc:
        raise errors.InvalidArgument(str(exc)) from None


def prepare_turn(turn: TurnRequest) -> PreparedTurn:
    """Validate, retrieve and build the provider request. Raises `errors.ChatError` before anything streams."""
    if turn.assistant.remote_name:
        # The remote assistant runs the model: no local key is needed for it, nor any local model of that id.
        reg = registry()
        spec = reg.resolve_remote(turn.model)
    else:
        reg, spec = resolve_model(turn.model)
    temperature = check_temperature(spec, turn.temperature)
    if not turn.messages or not any(m.role == "user" for m in turn.messages):
        raise errors.InvalidArgument("messages must include at least one user message")
    if turn.assistant.remote_name:
        try:
            provider = reg.remote_assistant(
                turn.assistant.remote_name, turn.metadata_filter.to_json() if turn.metadata_filter else None
            )
        except ModelUnavailable as exc:
            raise errors.FailedPrecondition(str(exc)) from None
        remote_messages = tuple(_provider_message(m) for m in turn.messages if m.role in ("user", "assistant"))
        request = provider_base.ProviderRequest(model=spec.id, messages=remote_messages, temperature=temperature)
        return PreparedTurn(uuid.uuid4().hex, spec, provider, request, [], temperature, remote=True)

    query = retrieval.query_from_messages(turn.messages)
    retrieval_started = time.perf_counter()
    snippets = retrieval.retrieve(
        assistant=turn.assistant,
        query=query,
        metadata_filter=turn.metadata_filter,
        top_k=turn.top_k,
        snippet_size=turn.snippet_size,
    )
    retrieval_seconds = time.perf_counter() - retrieval_started
    context = tuple(
        provider_base.ContextSnippet(number=i, text=s.text, file_name=s.file.name, pages=tuple(s.pages))
        for i, s in enumerate(snippets, start=1)
    )
    system = _system_prompt(turn, context)
    conversation = [provider_base.Message(role="system", content=system)]
    for message in turn.messages:
        if message.role == "system":
            continue  # folded into the system prompt above
        conversation.append(_provider_message(message))
    request = provider_base.ProviderRequest(
        model=spec.upstream_model, messages=tuple(conversation), temperature=temperature, context=context
    )
    return PreparedTurn(
        id=uuid.uuid4().hex,
        spec=spec,
        provider=reg.provider(spec),
        request=request,
        snippets=snippets,
        temperature_used=temperature,
        json_response=turn.json_response,
        include_highlights=turn.include_highlights,
        retrieval_seconds=retrieval_seconds,
    )


def _provider_message(message: TurnMessage) -> provider_base.Message:
    """The message as a model reads it: in a room, a member's words under their name ("Alice: ...")."""
    spoken = f"{message.speaker}: {message.content}" if message.speaker and message.role == "user" else message.content
    return provider_base.Message(role=message.role, content=spoken, speaker=message.speaker)  # type: ignore[arg-type]


def _system_prompt(turn: TurnRequest, context: tuple[provider_base.ContextSnippet, ...]) -> str:
    parts = [part for part in (turn.assistant.instructions or "", turn.extra_instructions) if part.strip()]
    parts += [m.content for m in turn.messages if m.role == "system"]
    parts.append(SYSTEM_RULES)
    if turn.json_response:
        parts.append(JSON_RULES)
    if context:
        sources = []
        for snippet in context:
            where = f", page {', '.join(map(str, snippet.pages))}" if snippet.pages else ""
            sources.append(f"[{snippet.number}] ({snippet.file_name}{where})\n{snippet.text}")
        parts.append("Sources:\n\n" + "\n\n".join(sources))
    else:
        parts.append("Sources: none were found for this question.")
    return "\n\n".join(parts)


class _CitationBuilder:
    """Maps snippet numbers cited by the model to references, numbering files by first citation."""

    def __init__(self, prepared: PreparedTurn) -> None:
        self.snippets = prepared.snippets
        self.include_highlights = prepared.include_highlights
        self.file_numbers: dict[int, int] = {}

    def build(self, marker: Marker, position: int, text_so_far: str) -> Citation | None:
        references = []
        seen: set[tuple[int, tuple[int, ...]]] = set()
        for number in marker.numbers:
            if not 1 <= number <= len(self.snippets):
                continue  # the model cited a source that does not exist: drop the marker
            snippet = self.snippets[number - 1]
            key = (snippet.file.pk, tuple(snippet.pages))
            if key in seen:
                continue
            seen.add(key)
            inline_number = self.file_numbers.setdefault(snippet.file.pk, len(self.file_numbers) + 1)
            highlight = _highlight(snippet.text, _last_sentence(text_so_far)) if self.include_highlights else None
            references.append(Reference(inline_number, snippet.file, tuple(snippet.pages), highlight))
        return Citation(position, tuple(references)) if references else None


def _last_sentence(text: str) -> str:
    parts = re.split(r"(?<=[.!?])\s+", text.strip())
    return parts[-1] if parts else ""


def _highlight(snippet_text: str, sentence: str) -> str:
    """The passage of the snippet that best supports the sentence (most shared words)."""
    words = set(re.findall(r"[^\W_]+", sentence.lower()))
    best, best_score = snippet_text[:300], -1
    for candidate in re.split(r"(?<=[.!?])\s+", snippet_text):
        score = len(words & set(re.findall(r"[^\W_]+", candidate.lower())))
        if score > best_score:
            best, best_score = candidate.strip(), score
    return best


async def stream_turn(
    prepared: PreparedTurn, *, on_accepted: Callable[[], None] | None = None
) -> AsyncIterator[TurnEvent]:
    """Text deltas and citations as they arrive, then one `TurnResult`. Provider errors propagate as
    `providers.base.ProviderError`; closing this generator closes the upstream stream. `on_accepted` is called
    once the upstream has accepted the request (not for the offline model, which sends none)."""
    started = time.perf_counter()
    first_token: float | None = None
    parser = MarkerParser()
    builder = _CitationBuilder(prepared)
    text_parts: list[str] = []
    inline_parts: list[str] = []
    citations: list[Citation] = []
    length = 0
    finish = provider_base.Finish()
    request = prepared.request
    if on_accepted is not None:
        request = replace(request, on_accepted=on_accepted)
    stream = prepared.provider.stream(request)
    try:
        async for item in stream:
            if isinstance(item, provider_base.Finish):
                finish = item
                break
            if first_token is None and item.text:
                first_token = time.perf_counter() - started
            pieces = parser.feed(item.text) if not prepared.remote else [Text(item.text)]
            for event in _apply(pieces, builder, text_parts, inline_parts, citations, length):
                if isinstance(event, TextDelta):
                    length += len(event.text)
                yield event
        for event in _apply(parser.close(), builder, text_parts, inline_parts, citations, length):
            yield event
    finally:
        await stream.aclose()
    text = "".join(text_parts)
    inline_text = "".join(inline_parts)
    if prepared.json_response:
        text = inline_text = _as_json(text)
    usage = finish.usage or provider_base.Usage(
        prompt_tokens=prompt_tokens(prepared), completion_tokens=count_tokens(text)
    )
    yield TurnResult(
        text=text,
        inline_text=inline_text,
        citations=citations,
        finish_reason=finish.reason,
        usage=usage,
        model=finish.model or prepared.spec.upstream_model,
        first_token_seconds=first_token,
        total_seconds=time.perf_counter() - started,
    )


def prompt_tokens(prepared: PreparedTurn) -> int:
    """The prompt's size in tokens, estimated (for an upstream that reports no usage, or a turn that did not end)."""
    return sum(count_tokens(m.content) for m in prepared.request.messages)


def _apply(pieces, builder, text_parts, inline_parts, citations, length):  # type: ignore[no-untyped-def]
    for piece in pieces:
        if isinstance(piece, Text):
            if piece.text:
                text_parts.append(piece.text)
                inline_parts.append(piece.text)
                length += len(piece.text)
                yield TextDelta(piece.text)
            continue
        citation = builder.build(piece, length, "".join(text_parts[-8:]))
        if citation is not None:
            citations.append(citation)
            inline_parts.append(citation.inline())
            yield CitationFound(citation)


def _as_json(text: str) -> str:
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.strip("`").removeprefix("json").strip()
    try:
        json.loads(stripped)
        return stripped
    except ValueError:
        return json.dumps({"answer": text.strip()})


async def collect(prepared: PreparedTurn) -> TurnResult:
    """Run a turn to the end (non-streaming requests)."""
    result: TurnResult | None = None
    async for event in stream_turn(prepared):
        if isinstance(event, TurnResult):
            result = event
    assert result is not None
    return result


TITLE_PROMPT = (
    "Write a short title (at most six words) for a conversation that starts with the question below. "
    "Reply with the title only: no quotes, no punctuation at the end."
)
TITLE_MAX_CHARS = 80


def writes_titles(prepared: PreparedTurn) -> bool:
    """Whether the turn's model can name a conversation: a real provider model. The offline model (which only
    quotes passages) and remote Pinecone assistants (which answer from their files) cannot: the caller derives a
    title from the question instead."""
    return not prepared.remote and prepared.spec.provider not in ("offline", "pinecone")


async def write_title(prepared: PreparedTurn, question: str) -> str:
    """A conversation title written by the turn's model (see `writes_titles`), in one short call. Raises
    `provider_base.ProviderError` when the model fails; the caller falls back to a derived title."""
    request = provider_base.ProviderRequest(
        model=prepared.spec.upstream_model,
        messages=(
            provider_base.Message(role="system", content=TITLE_PROMPT),
            provider_base.Message(role="user", content=question[:2000]),
        ),
        temperature=None,
        max_tokens=24,
    )
    parts: list[str] = []
    stream = prepared.provider.stream(request)
    try:
        async for item in stream:
            if isinstance(item, provider_base.Delta):
                parts.append(item.text)
                if sum(len(p) for p in parts) > TITLE_MAX_CHARS * 2:
                    break
    finally:
        await stream.aclose()
    title = " ".join("".join(parts).split()).strip(" \"'`*#.")
    return title[:TITLE_MAX_CHARS]
