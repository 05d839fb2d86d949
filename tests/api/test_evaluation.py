"""`POST /assistant/evaluation/metrics/alignment`, the offline evaluation: scores, judged facts, and its errors in
Pinecone's `BasicErrorResponse` shape (a 422 for a bad body)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from assistant_chat import services

pytestmark = pytest.mark.django_db(transaction=True)

PATH = "/assistant/evaluation/metrics/alignment"


def evaluate(client: Client, key: str | None, body: Any) -> Any:
    headers = {"HTTP_API_KEY": key} if key else {}
    return client.post(PATH, json.dumps(body), content_type="application/json", **headers)


def scores(response: Any) -> tuple[float, float, float]:
    metrics = response.json()["metrics"]
    return metrics["correctness"], metrics["completeness"], metrics["alignment"]


def test_a_wrong_answer_is_contradicted(client: Client, key: str) -> None:
    body = {"question": "What is the capital of Spain?", "answer": "Barcelona.", "ground_truth_answer": "Madrid."}
    response = evaluate(client, key, body)
    assert response.status_code == 200
    assert scores(response) == (0.0, 0.0, 0.0)
    (fact,) = response.json()["reasoning"]["evaluated_facts"]
    assert fact["fact"] == {"content": "Madrid."} and fact["entailment"] == "contradicted"
    assert "barcelona" in fact["reasoning"]
    assert response.json()["usage"]["total_tokens"] > 0


def test_a_right_answer_may_restate_the_question_and_cite(client: Client, key: str) -> None:
    body = {
        "question": "Who invented the printing press?",
        "answer": "Johannes Gutenberg of Mainz developed it around 1440. [1, pp. 1]",
        "ground_truth_answer": "Johannes Gutenberg invented the printing press around 1440.",
    }
    assert scores(evaluate(client, key, body)) == (1.0, 1.0, 1.0)


def test_a_partial_answer_is_correct_but_incomplete(client: Client, key: str) -> None:
    body = {
        "question": "What does a worker bee do, and how long does it live?",
        "answer": "A worker lives about five to six weeks in summer.",
        "ground_truth_answer": "Workers clean cells and forage for nectar. In summer a worker lives about five to six weeks.",
    }
    response = evaluate(client, key, body)
    assert scores(response) == (1.0, 0.5, 0.6667)
    facts = response.json()["reasoning"]["evaluated_facts"]
    assert [f["entailment"] for f in facts] == ["neutral", "entailed"]


def test_a_different_number_contradicts(client: Client, key: str) -> None:
    body = {
        "question": "When did Caxton set up his press?",
        "answer": "In 1476, at Westminster.",
        "ground_truth_answer": "Caxton set up his press at Westminster in 1477.",
    }
    response = evaluate(client, key, body)
    assert response.json()["reasoning"]["evaluated_facts"][0]["entailment"] == "contradicted"
    assert scores(response)[2] == 0.0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"question": "q", "answer": "a"}, "ground_truth_answer is required"),
        ({"question": "q", "answer": 3, "ground_truth_answer": "g"}, "answer is required and must be a string"),
        ({"question": "q", "answer": " ", "ground_truth_answer": "g"}, "answer cannot be empty"),
        ({"question": "q", "answer": "a", "ground_truth_answer": "g", "model": "x"}, "Unknown field(s): model"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_a_bad_body_is_422_with_a_message(client: Client, key: str, body: Any, message: str) -> None:
    response = evaluate(client, key, body)
    assert response.status_code == 422
    assert message in response.json()["message"]


def test_deny_paths(client: Client, key: str) -> None:
    body = {"question": "q", "answer": "a", "ground_truth_answer": "g"}
    assert evaluate(client, None, body).status_code == 401
    assert evaluate(client, "pcl_not-a-key", body).status_code == 401
    revoked, raw = services.api_key_create(name="gone")
    revoked.revoked = True
    revoked.save()
    refused = evaluate(client, raw, body)
    assert refused.status_code == 401 and refused.json() == {"message": "Invalid API key."}
    assert client.get(PATH, HTTP_API_KEY=key).status_code == 405
