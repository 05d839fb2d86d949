"""Chat with no model given, as a newcomer would, with pinecone 9.x or 8.x + pinecone-plugin-assistant 3.0.3.

Standalone (run by that SDK's own venv python; it cannot import the project). tests/api/test_sdk_default_model.py
runs it as
    python chat_default_model.py --url URL --api-key KEY --txt otters.txt
against a server started with bin/run's demo aliases (the SDKs' default, gpt-4o, answered by the offline model).
With 8.x it also uploads a corrupt PDF: the plugin must raise (it raises only from its poll, so the upload must
answer Processing). On success the last line of stdout is a JSON object of observations; a failure exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--txt", required=True, type=Path)
    parser.add_argument("--broken-pdf", type=Path)
    args = parser.parse_args()
    import pinecone

    question = "How do sea otters open shellfish?"
    observed: dict = {"pinecone": pinecone.__version__}
    if pinecone.__version__.startswith("8."):
        from pinecone import Pinecone
        from pinecone_plugins.assistant.models.chat import Message

        pc = Pinecone(api_key=args.api_key)
        name = f"default8-{uuid.uuid4().hex[:8]}"
        assistant = pc.assistant.create_assistant(assistant_name=name, timeout=30)
        assistant.upload_file(file_path=str(args.txt), timeout=60)
        chat = assistant.chat(messages=[Message(role="user", content=question)])
        observed["chat"] = {"model": chat.model, "content": chat.message.content, "cited": len(chat.citations)}
        streamed = list(assistant.chat(messages=[Message(role="user", content=question)], stream=True))
        observed["stream_text"] = "".join(
            getattr(getattr(chunk, "delta", None), "content", "") or "" for chunk in streamed if chunk
        )
        completion = assistant.chat_completions(messages=[Message(role="user", content=question)])
        observed["completion"] = {"model": completion.model, "content": completion.choices[0].message.content}
        if args.broken_pdf:
            try:
                assistant.upload_file(file_path=str(args.broken_pdf), timeout=60)
                observed["broken_upload"] = "no error"
            except Exception as exc:  # the plugin raises a bare Exception
                observed["broken_upload"] = f"{type(exc).__name__}: {exc}"
        pc.assistant.delete_assistant(assistant_name=name)
    else:
        from pinecone import Pinecone

        pc = Pinecone(api_key=args.api_key, host=args.url)
        name = f"default9-{uuid.uuid4().hex[:8]}"
        pc.assistants.create(name=name, timeout=30)
        pc.assistants.upload_file(assistant_name=name, file_path=str(args.txt), timeout=60)
        messages = [{"role": "user", "content": question}]
        chat = pc.assistants.chat(assistant_name=name, messages=messages)
        observed["chat"] = {"model": chat.model, "content": chat.message.content, "cited": len(chat.citations)}
        streamed = list(pc.assistants.chat(assistant_name=name, messages=messages, stream=True))
        observed["stream_text"] = "".join(
            getattr(getattr(chunk, "delta", None), "content", "") or "" for chunk in streamed
        )
        completion = pc.assistants.chat_completions(assistant_name=name, messages=messages)
        observed["completion"] = {"model": completion.model, "content": completion.choices[0].message.content}
        pc.assistants.delete(name=name, timeout=30)
    print(json.dumps(observed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
