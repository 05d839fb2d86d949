"""The data model (DESIGN §4): assistants and their files, chunks, API keys and file operations.

Invariants that must hold whatever code writes live here as constraints. Business logic does not:
writes go through `services`, reads through `selectors`.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import F, Q

ASSISTANT_NAME_RE = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
validate_assistant_name = RegexValidator(
    ASSISTANT_NAME_RE,
    "Assistant names are 1-63 characters of lowercase letters, digits and '-', "
    "starting and ending with a letter or digit.",
)
FILE_ID_RE = r"^[A-Za-z0-9_-]{1,128}$"
validate_file_id = RegexValidator(FILE_ID_RE, "File ids are 1-128 characters of letters, digits, '_' and '-'.")


def new_file_id() -> str:
    return str(uuid.uuid4())


def new_operation_id() -> str:
    return f"op-{uuid.uuid4().hex[:20]}"


class Assistant(models.Model):
    class Status(models.TextChoices):
        INITIALIZING = "Initializing"
        READY = "Ready"
        FAILED = "Failed"
        TERMINATING = "Terminating"
        INITIALIZATION_FAILED = "InitializationFailed"

    class Region(models.TextChoices):
        US = "us"
        EU = "eu"

    name = models.CharField(
        max_length=63,
        unique=True,
        validators=[validate_assistant_name],
        help_text="Unique name used in the API and the SDKs: lowercase letters, digits and '-', 1-63 characters.",
    )
    instructions = models.TextField(
        null=True,
        blank=True,
        help_text="Standing instructions given to the model before every conversation (at most 16 KB).",
    )
    metadata = models.JSONField(default=dict, blank=True, help_text="Free-form JSON object describing the assistant.")
    status = models.CharField(
        max_length=24,
        choices=Status.choices,
        default=Status.READY,
        help_text="Ready assistants answer; Terminating ones are being deleted and disappear shortly.",
    )
    region = models.CharField(
        max_length=2, choices=Region.choices, default=Region.US, help_text="Reported to API clients; immutable."
    )
    remote_name = models.CharField(
        max_length=63,
        blank=True,
        help_text="Leave empty for an assistant whose files live here. Set to the name of an assistant on a remote "
        "Pinecone (PINECONE_ASSISTANT_HOST, PINECONE_API_KEY) to answer through that assistant instead.",
    )
    room_staff = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="usable_assistants",
        help_text="Staff who may put this assistant in rooms and manage its files in the admin. Superusers and "
        "Room managers may use every assistant.",
    )
    room_staff_groups = models.ManyToManyField(
        "auth.Group",
        blank=True,
        related_name="usable_assistants",
        help_text="Every staff user in these groups may use this assistant, as under Room staff.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When deletion was requested (the row is a tombstone)."
    )
    tombstone_reads = models.PositiveIntegerField(
        default=0, editable=False, help_text="How many describes saw the Terminating tombstone."
    )

    embedding_model = models.CharField(
        max_length=100,
        default="offline",
        help_text="The model that embeds this assistant's chunks for search by meaning: 'offline' (built in, no key), "
        "'offline-minilm' (built in, finds questions in other words far better, embeds about 12 KB of text a second), "
        "'text-embedding-3-small', 'text-embedding-3-large', 'gemini-embedding-001', or a model served by the "
        "OpenAI-compatible server of EMBEDDINGS_BASE_URL. Changing it re-embeds every chunk in the background; "
        "search keeps using the previous model until that is done.",
    )
    embedded_with = models.CharField(
        max_length=100,
        default="offline",
        editable=False,
        help_text="The model the stored vectors come from; a question is embedded with this same model.",
    )
    embedding_progress = models.FloatField(
        default=1.0,
        editable=False,
        help_text="Progress of re-embedding with the embedding model, from 0.0 to 1.0 (1.0 when nothing is pending).",
    )
    embedding_error = models.TextField(
        blank=True, editable=False, help_text="Why the last re-embedding failed; empty when it did not."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class File(models.Model):
    class Status(models.TextChoices):
        PROCESSING = "Processing"
        AVAILABLE = "Available"
        DELETING = "Deleting"
        PROCESSING_FAILED = "ProcessingFailed"

    class Kind(models.TextChoices):
        TEXT = "text", "Text (.txt)"
        MARKDOWN = "markdown", "Markdown (.md)"
        JSON = "json", "JSON (.json)"
        PDF = "pdf", "PDF (.pdf)"
        DOCX = "doc_x", "Word (.docx)"

    assistant = models.ForeignKey(Assistant, on_delete=models.CASCADE, related_name="files")
    file_id = models.CharField(
        max_length=128,
        default=new_file_id,
        validators=[validate_file_id],
        help_text="The id API clients use; a UUID unless the client chose one with an upsert.",
    )
    name = models.CharField(max_length=255, help_text="The uploaded file name; its extension decides the type.")
    kind = models.CharField(max_length=16, choices=Kind.choices, help_text="Document type, from the extension.")
    size = models.BigIntegerField(default=0, help_text="Size of the uploaded file in bytes.")
    metadata = models.JSONField(
        default=dict,
        blank=True,
        help_text='Flat JSON object used by metadata filters, e.g. {"resource": "encyclopedia", "year": 2024}.',
    )
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.PROCESSING)
    error_message = models.TextField(blank=True, help_text="Why processing failed, in words a person can act on.")
    percent_done = models.FloatField(default=0.0, help_text="Processing progress from 0.0 to 1.0.")
    content_hash = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the uploaded bytes.")
    crc32c_hash = models.CharField(
        max_length=12,
        blank=True,
        help_text="CRC32C of the uploaded bytes, base64 of its 4 big-endian bytes (as Google Cloud Storage writes "
        "it); the API's crc32c_hash, which pinecone 10.x reads as content_hash.",
    )
    multimodal = models.BooleanField(default=False, help_text="Pinecone's multimodal PDF flag; stored as given.")
    created_on = models.DateTimeField(auto_now_add=True)
    updated_on = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True, editable=False)
    tombstone_reads = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["created_on", "id"]
        constraints = [
            models.UniqueConstraint(fields=["assistant", "file_id"], name="file_id_unique_per_assistant"),
            models.CheckConstraint(
                condition=Q(percent_done__gte=0.0) & Q(percent_done__lte=1.0), name="file_percent_done_range"
            ),
        ]
        indexes = [models.Index(fields=["assistant", "status"])]

    def __str__(self) -> str:
        return self.name


class FileBlob(models.Model):
    """The uploaded bytes, kept apart so that listing files never loads them."""

    file = models.OneToOneField(File, on_delete=models.CASCADE, primary_key=True, related_name="blob")
    data = models.BinaryField()

    def __str__(self) -> str:
        return f"bytes of file {self.file_id}"


class Chunk(models.Model):
    file = models.ForeignKey(File, on_delete=models.CASCADE, related_name="chunks")
    # Denormalised so that search narrows to one assistant without a join.
    assistant = models.ForeignKey(Assistant, on_delete=models.CASCADE, related_name="+")
    ordinal = models.PositiveIntegerField(help_text="Position of the chunk in its file, from 0.")
    text = models.TextField()
    pages = models.JSONField(default=list, blank=True, help_text="1-based page numbers the chunk spans (PDF, DOCX).")
    tokens = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["file_id", "ordinal"]
        constraints = [models.UniqueConstraint(fields=["file", "ordinal"], name="chunk_ordinal_unique_per_file")]
        indexes = [models.Index(fields=["assistant"])]

    def __str__(self) -> str:
        return f"{self.file_id}#{self.ordinal}"


class VectorField(models.BinaryField):
    """A vector column: pgvector's `vector` on PostgreSQL, float32 bytes in a BLOB on SQLite (searched in numpy).

    Written and read with raw SQL by knowledge/vectors.py; the ORM only creates and cascades the rows."""

    def db_type(self, connection):  # type: ignore[no-untyped-def]
        return "vector" if connection.vendor == "postgresql" else super().db_type(connection)


class ChunkVector(models.Model):
    """A chunk's embedding by one model. During a re-embed a chunk has one row per model; afterwards one."""

    chunk = models.ForeignKey(Chunk, on_delete=models.CASCADE, related_name="vectors")
    # Denormalised so that a filtered vector search reads one table (the filter picks files).
    assistant = models.ForeignKey(Assistant, on_delete=models.CASCADE, related_name="+")
    file = models.ForeignKey(File, on_delete=models.CASCADE, related_name="+")
    model = models.CharField(max_length=100, help_text="The embedding model that made this vector.")
    dimensions = models.PositiveSmallIntegerField(help_text="The vector's length (the HNSW index is per length).")
    embedding = VectorField(help_text="The L2-normalised embedding.")
    indexed = models.BooleanField(
        db_default=True,
        help_text="False while the vector waits for the index_vectors job to add it to the HNSW index "
        "(PostgreSQL); it is searched exactly meanwhile. Always true on SQLite.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["chunk", "model"], name="chunk_vector_one_per_model"),
            models.CheckConstraint(condition=Q(dimensions__gt=0), name="chunk_vector_dimensions_positive"),
        ]
        indexes = [models.Index(fields=["assistant", "model"])]

    def __str__(self) -> str:
        return f"{self.chunk_id} by {self.model}"


class FilePage(models.Model):
    """A file's text as ingestion extracted it, in order, for the file viewer (which never re-parses the upload).
    A page longer than a segment is stored as several rows with the same page number."""

    file = models.ForeignKey(File, on_delete=models.CASCADE, related_name="pages")
    ordinal = models.PositiveIntegerField(help_text="Position of this segment in the file, from 0.")
    number = models.PositiveIntegerField(
        null=True, blank=True, help_text="1-based page number for PDF and DOCX; empty for text formats."
    )
    text = models.TextField(help_text="The segment's text (at most FILE_PAGE_SEGMENT_CHARS characters).")

    class Meta:
        ordering = ["file_id", "ordinal"]
        constraints = [models.UniqueConstraint(fields=["file", "ordinal"], name="file_page_ordinal_unique")]

    def __str__(self) -> str:
        return f"{self.file_id} page {self.number or '-'} #{self.ordinal}"


class Operation(models.Model):
    """An asynchronous file mutation, as API version 2026-04 and later report them."""

    class Type(models.TextChoices):
        UPLOAD_FILE = "upload_file"
        UPSERT_FILE = "upsert_file"
        DELETE_FILE = "delete_file"

    class Status(models.TextChoices):
        PROCESSING = "Processing"
        COMPLETED = "Completed"
        FAILED = "Failed"

    operation_id = models.CharField(max_length=40, unique=True, default=new_operation_id)
    assistant = models.ForeignKey(Assistant, on_delete=models.CASCADE, related_name="operations")
    operation_type = models.CharField(max_length=24, choices=Type.choices)
    file_id = models.CharField(max_length=128, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PROCESSING)
    percent_complete = models.PositiveSmallIntegerField(default=0)
    error_message = models.TextField(blank=True)
    created_on = models.DateTimeField(auto_now_add=True)
    completed_on = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_on", "-id"]
        indexes = [models.Index(fields=["assistant", "file_id"])]
        constraints = [
            models.CheckConstraint(condition=Q(percent_complete__lte=100), name="operation_percent_range"),
        ]

    def __str__(self) -> str:
        return f"{self.operation_id} {self.operation_type} {self.status}"


class ApiKey(models.Model):
    """A key for the HTTP API. Only a SHA-256 of the key is stored; the key itself is shown once."""

    name = models.CharField(max_length=100, help_text="Who or what uses this key, for your own reference.")
    prefix = models.CharField(max_length=16, unique=True, editable=False, help_text="First characters of the key.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    assistants = models.ManyToManyField(
        Assistant,
        blank=True,
        related_name="api_keys",
        help_text="Assistants this key may use. Leave empty for a key that may create and manage any assistant.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked = models.BooleanField(default=False, help_text="Revoked keys are refused at once.")

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class ModelEndpoint(models.Model):
    """A model staff add, served by any OpenAI-compatible server (vLLM, Ollama, llama.cpp, another instance)."""

    model_id = models.CharField(
        max_length=100,
        unique=True,
        help_text="The id rooms and API clients use for this model, e.g. 'llama-3.1-8b-local'.",
    )
    label = models.CharField(max_length=200, blank=True, help_text="Shown in model choices.")
    base_url = models.URLField(
        max_length=500,
        help_text="The server's OpenAI-compatible base URL, up to but excluding /chat/completions, "
        "e.g. http://127.0.0.1:11434/v1 (Ollama) or http://127.0.0.1:8001/v1 (vLLM).",
    )
    upstream_model = models.CharField(max_length=200, help_text="The model name that server expects.")
    api_key = models.CharField(max_length=500, blank=True, help_text="Bearer key, if the server needs one.")
    accepts_temperature = models.BooleanField(
        default=True, help_text="Untick for reasoning models that reject a temperature."
    )
    temperature_max = models.FloatField(default=2.0, help_text="Highest temperature this server accepts.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model_id"]
        verbose_name = "model endpoint"
        constraints = [
            models.CheckConstraint(
                condition=Q(temperature_max__gte=0.0) & Q(temperature_max__lte=2.0),
                name="endpoint_temperature_max_range",
            ),
        ]

    def __str__(self) -> str:
        return self.label or self.model_id


class ModelAlias(models.Model):
    """A model id answered by another model: "gpt-4o" by a local Ollama model, or by the offline model on a machine
    with no OpenAI key. Followed by the registry (providers/registry.py) with `MODEL_ALIASES`; this one wins."""

    alias = models.CharField(
        max_length=100,
        unique=True,
        help_text="The model id clients and rooms send, e.g. 'gpt-4o' (the SDKs' default). May be a model that "
        "exists: the alias replaces it.",
    )
    target = models.CharField(
        max_length=100,
        help_text="The model that answers instead: a built-in model ('offline', 'gpt-4.1', ...), a model endpoint's "
        "id, or another alias. Answers name the model that really answered.",
    )
    note = models.CharField(max_length=200, blank=True, help_text="Why this alias exists, for other staff.")
    enabled = models.BooleanField(default=True, help_text="Untick to stop following this alias without deleting it.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["alias"]
        verbose_name = "model alias"
        verbose_name_plural = "model aliases"
        constraints = [
            models.CheckConstraint(condition=~Q(alias=F("target")), name="model_alias_not_itself"),
        ]

    def __str__(self) -> str:
        return f"{self.alias} → {self.target}"


# --- rooms -------------------------------------------------------------------------------------------------------


def validate_temperature(value: float) -> None:
    from django.core.exceptions import ValidationError

    if not 0.0 <= value <= 2.0:
        raise ValidationError(f"Temperature must be between 0 and 2, got {value:g}.")


class Room(models.Model):
    """A configured space where members chat with one assistant (DESIGN §4). Staff edit it in the admin; a change
    applies to the next turn, and each assistant message keeps a snapshot of the settings it was produced with."""

    class ReplyMode(models.TextChoices):
        EVERY = "every", "Answer every message"
        ADDRESSED = "addressed", "Answer only messages that address the assistant (@assistant)"

    name = models.CharField(max_length=200, help_text="Shown to members in the room list and the room header.")
    slug = models.SlugField(max_length=100, unique=True, help_text="The room's address: /rooms/ followed by this slug.")
    assistant = models.ForeignKey(
        Assistant,
        on_delete=models.PROTECT,
        related_name="rooms",
        help_text="The assistant whose files ground every answer in this room.",
    )
    model = models.CharField(
        max_length=100,
        blank=True,
        help_text="Model id from the registry (seed models or a registered model endpoint). "
        "Empty means the default: gpt-4o where OpenAI is configured, otherwise the offline model.",
    )
    temperature = models.FloatField(
        null=True,
        blank=True,
        validators=[validate_temperature],
        help_text="0 to 2. Empty uses the provider's default. Reasoning models (o4-mini) ignore it.",
    )
    metadata_filter = models.JSONField(
        default=dict,
        blank=True,
        help_text="Which of the assistant's files answers may use, in Pinecone's filter language, e.g. "
        '{"team": "sales", "year": {"$gte": 2024}}. Empty means all files.',
    )
    instructions = models.TextField(
        blank=True,
        help_text="Extra instructions for this room, added after the assistant's own instructions.",
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="chat_rooms",
        help_text="Users who may enter the room.",
    )
    member_groups = models.ManyToManyField(
        "auth.Group",
        blank=True,
        related_name="chat_rooms",
        help_text="Every user in these groups may enter the room.",
    )
    reply_mode = models.CharField(
        max_length=16,
        choices=ReplyMode.choices,
        default=ReplyMode.EVERY,
        help_text="Whether the assistant answers every message or only messages that mention @assistant "
        "(or the assistant's name).",
    )
    archived = models.BooleanField(
        default=False, help_text="Archived rooms are hidden from members; their history stays for review."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(temperature__isnull=True) | (Q(temperature__gte=0.0) & Q(temperature__lte=2.0)),
                name="room_temperature_range",
            ),
        ]
        permissions = [("manage_rooms", "Can configure rooms and review their conversations")]

    def __str__(self) -> str:
        return self.name


class Conversation(models.Model):
    """A thread in a room. Members start as many as they like; each keeps its own history."""

    class TitleSource(models.TextChoices):
        DEFAULT = "default", "Not named yet"
        AUTO = "auto", "Named automatically after the first answer"
        MANUAL = "manual", "Named by a member"

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="conversations")
    title = models.CharField(max_length=200, help_text="Shown in the room's conversation list.")
    title_source = models.CharField(
        max_length=8,
        choices=TitleSource.choices,
        default=TitleSource.DEFAULT,
        help_text="Who named the conversation. Only an unnamed one gets an automatic title after its first answer; "
        "a member's rename is never overwritten.",
    )
    archived = models.BooleanField(
        default=False,
        help_text="Archived by its creator: left out of the room's conversation list (members can still show "
        "archived ones); staff review sees it as before.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The member who started the conversation; only they may archive it.",
    )
    created_at = models.DateTimeField(auto_now_add=True, help_text="When the conversation was started.")
    updated_at = models.DateTimeField(auto_now=True, help_text="Last activity: a new message or a rename.")

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [
            models.Index(fields=["room", "-updated_at"]),
            # The admin's review list spans rooms, newest activity first: this index serves that order with LIMIT.
            models.Index(fields=["updated_at", "id"], name="conversation_activity"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(title_source__in=["default", "auto", "manual"]), name="conversation_title_source_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.title


class Message(models.Model):
    """One message in a conversation. Assistant messages are written twice: created `streaming` when the turn
    starts, and finished in one write (text, citations, usage, timings) when it ends."""

    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"

    class Status(models.TextChoices):
        # A member's question waiting for its answer (another answer in the conversation is still streaming);
        # it becomes `complete` when its turn starts, oldest first.
        QUEUED = "queued"
        STREAMING = "streaming"
        COMPLETE = "complete"
        CANCELLED = "cancelled"
        FAILED = "failed"
        INTERRUPTED = "interrupted"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=Role.choices)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="chat_messages",
        help_text="Who wrote a user message; empty for assistant messages.",
    )
    reply_to = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="replies",
        help_text="For an assistant message, the user message it answers.",
    )
    content = models.TextField(blank=True, help_text="Markdown text; for assistant messages with inline citations.")
    citations = models.JSONField(
        default=list, blank=True, help_text="Structured citations: position, file id and name, pages."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    model = models.CharField(max_length=100, blank=True, help_text="Model id that produced this answer.")
    temperature = models.FloatField(null=True, blank=True, help_text="Temperature sent (empty: not sent).")
    metadata_filter = models.JSONField(
        null=True, blank=True, help_text="The room's filter when this answer was produced."
    )
    finish_reason = models.CharField(max_length=32, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    first_token_ms = models.FloatField(null=True, blank=True, help_text="Milliseconds to the first token.")
    total_ms = models.FloatField(null=True, blank=True, help_text="Milliseconds from start to the end of the turn.")
    error = models.TextField(blank=True, help_text="Why the turn failed, as shown to members.")
    seq = models.PositiveIntegerField(default=0, help_text="Last delta number published for this turn.")
    runner = models.CharField(
        max_length=200, blank=True, help_text="Channel of the process running this turn (for stop requests)."
    )
    lease_expires_at = models.DateTimeField(
        null=True, blank=True, help_text="A streaming turn whose lease lapsed lost its process: it is interrupted."
    )
    client_id = models.CharField(
        max_length=64,
        blank=True,
        help_text="The sender's id for this message (from the browser), so that a resend after a connection "
        "failure is recognised and saved once.",
    )
    version_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="later_versions",
        help_text="Empty for a message's first version. A regenerated answer or an edited question is a new row "
        "pointing at the first version of its place in the conversation; earlier versions are kept.",
    )
    version = models.PositiveIntegerField(
        default=1, help_text="1 for the first version, then 2, 3, ... in the order they were made."
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who asked for an answer: for a question, its author or the member who asked to regenerate its "
        "answer; for an answer, copied from its question when the turn started. They may stop it.",
    )
    stopped_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who stopped this answer (status cancelled). Set when the stop is asked for; cleared if the "
        "answer ended otherwise first.",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True, help_text="When the message was saved.")
    completed_at = models.DateTimeField(null=True, blank=True, help_text="When an answer ended, however it ended.")

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["conversation", "id"]),
            models.Index(fields=["author", "created_at"]),
            # The admin's review filters ("has failed answers", "answered by model X") find conversations by these.
            models.Index(fields=["status", "conversation"], name="message_status_conversation"),
            models.Index(fields=["model", "conversation"], name="message_model_conversation"),
            # The queue of questions waiting for an answer, read on every turn's end and by each process's sweep.
            models.Index(fields=["conversation", "id"], condition=Q(status="queued"), name="message_queued"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation"],
                condition=Q(status="streaming"),
                name="one_streaming_message_per_conversation",
            ),
            models.CheckConstraint(
                condition=Q(temperature__isnull=True) | (Q(temperature__gte=0.0) & Q(temperature__lte=2.0)),
                name="message_temperature_range",
            ),
            models.CheckConstraint(condition=Q(role__in=["user", "assistant"]), name="message_role_valid"),
            models.UniqueConstraint(
                fields=["author", "client_id"], condition=~Q(client_id=""), name="message_client_id_once"
            ),
            models.CheckConstraint(
                condition=(Q(version_of__isnull=True) & Q(version=1))
                | (Q(version_of__isnull=False) & Q(version__gte=2)),
                name="message_version_numbering",
            ),
            models.UniqueConstraint(
                fields=["version_of", "version"], condition=Q(version_of__isnull=False), name="message_version_once"
            ),
            models.CheckConstraint(
                condition=Q(stopped_by__isnull=True) | Q(status__in=["streaming", "cancelled"]),
                name="message_stopped_only_when_cancelled",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role} #{self.pk}"


class MessageFeedback(models.Model):
    """A member's vote on one version of an answer: up or down, with an optional comment. One per member and
    version (they may change it); counts are shown live to the room, votes in staff review and exports."""

    class Value(models.TextChoices):
        UP = "up", "Helpful"
        DOWN = "down", "Not helpful"

    message = models.ForeignKey(
        Message, on_delete=models.CASCADE, related_name="feedback", help_text="The answer version voted on."
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", help_text="The member who voted."
    )
    value = models.CharField(max_length=4, choices=Value.choices, help_text="Up (helpful) or down (not helpful).")
    comment = models.CharField(max_length=2000, blank=True, help_text="Why, in the member's words (optional).")
    created_at = models.DateTimeField(auto_now_add=True, help_text="When the member first voted on this answer.")
    updated_at = models.DateTimeField(auto_now=True, help_text="When the vote or comment last changed.")

    class Meta:
        ordering = ["message_id", "id"]
        verbose_name = "feedback"
        verbose_name_plural = "feedback"
        constraints = [
            models.UniqueConstraint(fields=["message", "user"], name="feedback_once_per_member"),
            models.CheckConstraint(condition=Q(value__in=["up", "down"]), name="feedback_value_valid"),
        ]
        # The review filter "has negative feedback" finds answers by vote.
        indexes = [models.Index(fields=["value", "message"], name="feedback_value_message")]

    def __str__(self) -> str:
        return f"{self.value} on #{self.message_id}"


class Usage(Message):
    """Token usage and turns per day, room, member and model: a read-only report in the admin over assistant
    messages (no table of its own; `review/usage.py` aggregates)."""

    class Meta:
        proxy = True
        verbose_name = "usage"
        verbose_name_plural = "usage"
