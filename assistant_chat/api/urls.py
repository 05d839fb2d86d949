"""Routes of the Pinecone-compatible API, mounted at /assistant/ (no trailing slashes: the SDKs send none)."""

from django.urls import path, re_path

from .assistants import assistant_view, assistants_view
from .chat import chat, chat_completions
from .context import context_view
from .evaluation import alignment
from .files import download_file, file_view, files_view, operation_view, operations_view
from .http import unknown_path

urlpatterns = [
    path("assistants", assistants_view, name="api-assistants"),
    path("assistants/<str:name>", assistant_view, name="api-assistant"),
    path("files/<str:name>", files_view, name="api-files"),
    path("files/<str:name>/<str:file_id>", file_view, name="api-file"),
    path("operations/<str:name>", operations_view, name="api-operations"),
    path("operations/<str:name>/<str:operation_id>", operation_view, name="api-operation"),
    path("chat/<str:name>", chat, name="api-chat"),
    path("chat/<str:name>/chat/completions", chat_completions, name="api-chat-completions"),
    path("chat/<str:name>/context", context_view, name="api-context"),
    path("download/<str:token>", download_file, name="api-file-download"),
    path("evaluation/metrics/alignment", alignment, name="api-evaluation-alignment"),
    re_path(r"^.*$", unknown_path),  # last: any other path under /assistant/ is answered in the API's envelope
]
