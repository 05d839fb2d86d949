"""`POST /assistant/evaluation/metrics/alignment`: how far an answer agrees with a ground-truth answer.

Pinecone serves this from its evaluation host, which the SDKs take from `PINECONE_PLUGIN_ASSISTANT_DATA_HOST`;
pointed at this server, they get the offline evaluation (`assistant_chat.evaluation`). Errors are Pinecone's
`BasicErrorResponse` here, `{"message": ...}`, not the envelope of the other endpoints (422 for a bad body).
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from .. import errors, evaluation, selectors
from .http import json_body, presented_key

logger = logging.getLogger(__name__)

FIELDS = ("question", "answer", "ground_truth_answer")


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"message": message}, status=status)


@csrf_exempt
def alignment(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        response = _error(405, f"Method {request.method} is not allowed here")
        response["Allow"] = "POST"
        return response
    try:
        selectors.api_key_authenticate(raw_key=presented_key(request))
        body = json_body(request)
    except errors.InvalidArgument as exc:
        return _error(422, exc.message)
    except errors.ChatError as exc:
        return _error(exc.status, exc.message)
    problem = _problem(body)
    if problem:
        return _error(422, problem)
    try:
        result = evaluation.align(
            question=body["question"], answer=body["answer"], ground_truth=body["ground_truth_answer"]
        )
    except Exception:
        logger.exception("alignment evaluation failed")
        return _error(500, "Internal server error")
    return JsonResponse(
        {
            "metrics": {
                "correctness": result.correctness,
                "completeness": result.completeness,
                "alignment": result.alignment,
            },
            "reasoning": {
                "evaluated_facts": [
                    {"fact": {"content": j.fact}, "entailment": j.entailment, "reasoning": j.reasoning}
                    for j in result.facts
                ]
            },
            "usage": {
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
                "total_tokens": result.prompt_tokens + result.completion_tokens,
            },
        }
    )


def _problem(body: dict[str, Any]) -> str | None:
    """What is wrong with the body, as the spec has it: the three strings, required, and nothing else."""
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        return f"Unknown field(s): {', '.join(unknown)}; the fields are {', '.join(FIELDS)}"
    for name in FIELDS:
        value = body.get(name)
        if not isinstance(value, str):
            return f"{name} is required and must be a string"
        if not value.strip():
            return f"{name} cannot be empty"
    return None
