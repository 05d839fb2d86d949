"""The offline model on text it was not tuned on: a Markdown FAQ, a plain-text policy and a JSON catalogue.

`tests/knowledge/test_offline_answers.py` asks the demo files through retrieval; these call the model directly,
with no Django, on three snippets at once, so an answer must also come from the right one.
"""

from __future__ import annotations

import json
import re

import pytest

from assistant_chat.providers.base import ContextSnippet, Delta, Finish, Message, ProviderRequest
from assistant_chat.providers.offline import MODEL_ID, NO_ANSWER, OfflineProvider, compose_answer, is_follow_up

FAQ = """# Acme Router X2 FAQ

## Setup

To set up the router, connect it to your modem with the included Ethernet cable and open http://192.168.1.1 in a
browser. The default password is printed on the label under the router.

## Resetting

Hold the reset button on the back for ten seconds until the light blinks orange. All settings return to factory
defaults.

## Warranty

The router comes with a two-year limited warranty. Water damage and drops are not covered.

Supported bands:

- 2.4 GHz for range
- 5 GHz for speed
- 6 GHz on the X2 Pro only
"""

POLICY = """Leave policy

Full-time employees receive 25 days of paid annual leave per calendar year. Part-time staff receive leave in
proportion to their hours. Unused leave of up to five days may be carried over to the next year and must be taken
by 31 March.

Sick leave must be reported to your manager before 10:00 on the first day of absence. A doctor's note is required
from the fourth day.

Parental leave is 16 weeks at full pay for the primary carer and 4 weeks for the secondary carer."""

CATALOGUE = json.dumps(
    {
        "products": [
            {
                "name": "Trail Runner 3",
                "price": "129 EUR",
                "weight": "240 g",
                "description": "A light trail shoe with a rock plate and a 6 mm drop. Best for dry, rocky paths.",
            },
            {
                "name": "Road Glide",
                "price": "149 EUR",
                "weight": "260 g",
                "description": "A cushioned road shoe for long runs, with a carbon-infused midsole.",
            },
        ]
    },
    indent=2,
)

SNIPPETS = (
    ContextSnippet(number=1, text=FAQ, file_name="router.md", pages=()),
    ContextSnippet(number=2, text=POLICY, file_name="leave.txt", pages=()),
    ContextSnippet(number=3, text=CATALOGUE, file_name="shoes.json", pages=()),
)


@pytest.mark.parametrize(
    ("question", "quoted", "number"),
    [
        ("How do I reset the router?", "Hold the reset button on the back for ten seconds", 1),
        ("What is the default password?", "printed on the label", 1),
        ("How long is the warranty?", "two-year limited warranty", 1),
        ("Is water damage covered?", "Water damage and drops are not covered", 1),
        ("Which bands are supported?", "Supported bands: [1]\n\n- 2.4 GHz for range\n- 5 GHz for speed\n- 6 GHz", 1),
        ("How many days of annual leave do I get?", "25 days of paid annual leave", 2),
        ("Can I carry over unused leave?", "may be carried over", 2),
        ("When do I need a doctor's note?", "required from the fourth day", 2),
        ("How long is parental leave?", "16 weeks at full pay", 2),
        ("How do I take sick leave?", "reported to your manager before 10:00", 2),
        ("How much does the Trail Runner 3 cost?", "Trail Runner 3, price: 129 EUR", 3),
        ("What does the Road Glide weigh?", "Road Glide, weight: 260 g", 3),
        ("Which shoe is best for long runs?", "cushioned road shoe for long runs", 3),
    ],
)
def test_quotes_the_answer_and_cites_only_its_snippet(question: str, quoted: str, number: int) -> None:
    answer = compose_answer(question, SNIPPETS)
    assert quoted in answer
    assert set(_markers(answer)) == {number}, answer


@pytest.mark.parametrize("question", ["Who is the CEO?", "What is the refund policy?", "How do I cancel an order?"])
def test_refuses_what_the_snippets_do_not_answer(question: str) -> None:
    # "policy" is there (the leave policy), "refund" is not: the question is not answered by half a match.
    assert compose_answer(question, SNIPPETS) == NO_ANSWER


def test_no_question_terms_or_no_snippets_is_no_answer() -> None:
    assert compose_answer("What is it?", SNIPPETS) == NO_ANSWER
    assert compose_answer("How do I reset the router?", ()) == NO_ANSWER


def test_a_question_word_asks_for_a_kind_of_answer_not_for_its_word() -> None:
    # "How long" asks for a duration: "long runs" in the catalogue is no part of the answer.
    assert "long runs" not in compose_answer("How long is the warranty?", SNIPPETS)


def test_headings_are_read_but_not_quoted() -> None:
    answer = compose_answer("How do I reset the router?", SNIPPETS)
    assert "Resetting" not in answer and "#" not in answer and "FAQ" not in answer


async def test_streams_the_composed_answer_then_usage() -> None:
    request = ProviderRequest(
        model="offline", messages=(Message(role="user", content="Is water damage covered?"),), context=SNIPPETS
    )
    items = [item async for item in OfflineProvider().stream(request)]
    text = "".join(item.text for item in items if isinstance(item, Delta))
    assert text == compose_answer("Is water damage covered?", SNIPPETS)
    assert len([item for item in items if isinstance(item, Delta)]) > 3  # word by word
    finish = items[-1]
    assert isinstance(finish, Finish) and finish.model == MODEL_ID
    assert finish.usage is not None and finish.usage.completion_tokens > 0


def _markers(answer: str) -> list[int]:
    return [int(n) for n in re.findall(r"\[(\d+)\]", answer)]


async def test_in_a_room_the_speakers_name_is_not_part_of_the_question() -> None:
    # Rooms send "Bob: warranty?"; read as a question term, "Bob" (in no file) would halve a one-word question.
    said = Message(role="user", content="Bob: warranty?", speaker="Bob")
    request = ProviderRequest(model="offline", messages=(said,), context=SNIPPETS)
    text = "".join([item.text async for item in OfflineProvider().stream(request) if isinstance(item, Delta)])
    assert "two-year limited warranty" in text
    assert text == compose_answer("warranty?", SNIPPETS)  # the name is no part of what the model reads


@pytest.mark.parametrize(
    ("before", "question", "quoted"),
    [
        ("How do I reset the router?", "How long does it take?", "ten seconds"),
        ("How long is parental leave?", "And for the secondary carer?", "4 weeks for the secondary carer"),
        ("Tell me about parental leave.", "How long is it?", "16 weeks at full pay"),
    ],
)
def test_a_follow_up_question_is_read_with_the_one_before(before: str, question: str, quoted: str) -> None:
    assert quoted in compose_answer(question, SNIPPETS, before=before)


async def test_the_provider_passes_the_question_before_to_the_model() -> None:
    conversation = (
        Message(role="user", content="Alice: How do I reset the router?", speaker="Alice"),
        Message(role="assistant", content="Hold the reset button on the back for ten seconds. [1]"),
        Message(role="user", content="Bob: How long does it take?", speaker="Bob"),
    )
    request = ProviderRequest(model="offline", messages=conversation, context=SNIPPETS)
    text = "".join([item.text async for item in OfflineProvider().stream(request) if isinstance(item, Delta)])
    assert "ten seconds" in text
    assert compose_answer("How long does it take?", SNIPPETS) == NO_ANSWER  # alone, it asks about nothing


def test_an_abbreviation_or_an_initial_does_not_end_the_sentence() -> None:
    notes = ContextSnippet(
        number=1,
        text="The survey was led by Dr. Jane Smith and J. R. Okafor in 2019. It covered 40 reefs.",
        file_name="survey.txt",
        pages=(),
    )
    assert compose_answer("Who led the survey?", (notes,)) == (
        "The survey was led by Dr. Jane Smith and J. R. Okafor in 2019. [1]"
    )


@pytest.mark.parametrize(
    "table",
    [
        "| Class | Flights | Approval |\n| --- | --- | --- |\n| Economy | under six hours | none |\n"
        "| Business | over six hours | director |",
        "Class | Flights | Approval\nEconomy | under six hours | none\nBusiness | over six hours | director",  # .docx
    ],
)
def test_a_table_row_is_quoted_with_its_headers(table: str) -> None:
    fares = ContextSnippet(number=1, text=f"# Fares\n\n{table}\n", file_name="fares.md", pages=())
    assert compose_answer("Who must approve business class?", (fares,)) == (
        "Class: Business; Flights: over six hours; Approval: director [1]"
    )


# --- shapes: tables, lists, code, FAQs, superseded rules (each a whole small document, as one snippet) -------------

RATES = """# Kennel rates

The following table lists the nightly rates:

| Dog size | Weekday | Weekend |
| --- | --- | --- |
| Small | 25 EUR | 30 EUR |
| Medium | 32 EUR | 38 EUR |
| Large | 40 EUR | 48 EUR |

Prices include two walks a day.
"""

STEPS = """# Closing the studio

## At the end of the day

1. Switch off the kiln.
2. Lock the glaze cupboard.
3. Set the alarm at the back door.
"""

DEPLOY = """# Deploying the site

To publish a new version, run:

```bash
make build
rsync -a public/ web01:/srv/site/
```

Deploys are logged in the team channel.
"""

FAQ_TEXT = """CLIMBING WALL — QUESTIONS AND ANSWERS

Q: Do I need my own shoes?
A: No. Shoes and harnesses are lent free of charge at the desk.

Q: Can children climb?
A: Children from 8 years may climb with an adult who holds a belay card.
"""

POLICY_VERSIONS = """# Library loans

## Current rules (2025)

Books may be borrowed for 21 days and renewed twice online.

## Previous rules (2019, withdrawn)

Books could be borrowed for 14 days and renewed once at the desk.
"""


def one(text: str, name: str = "doc.md") -> tuple[ContextSnippet, ...]:
    return (ContextSnippet(number=1, text=text, file_name=name, pages=()),)


def test_a_table_that_answers_as_a_whole_is_quoted_whole_as_markdown() -> None:
    answer = compose_answer("What are the rates for boarding a dog?", one(RATES))
    assert answer.startswith("The following table lists the nightly rates: [1]\n\n| Dog size | Weekday | Weekend |")
    assert "| --- | --- | --- |" in answer and "| Large | 40 EUR | 48 EUR |" in answer


def test_a_row_that_answers_alone_is_quoted_with_its_headers() -> None:
    answer = compose_answer("How much is a large dog at the weekend?", one(RATES))
    assert "Dog size: Large; Weekday: 40 EUR; Weekend: 48 EUR [1]" in answer
    assert "Small" not in answer


def test_a_numbered_list_keeps_its_numbers_on_their_own_lines() -> None:
    answer = compose_answer("What are the steps for closing up at night?", one(STEPS))
    assert "1. Switch off the kiln.\n2. Lock the glaze cupboard.\n3. Set the alarm at the back door." in answer
    assert ";" not in answer


def test_code_is_quoted_whole_after_the_sentence_that_introduces_it() -> None:
    answer = compose_answer("How do I publish a new version of the site?", one(DEPLOY))
    assert answer.startswith("To publish a new version, run: [1]\n\n```bash\nmake build\nrsync -a public/")
    assert answer.count("```") == 2  # the block once, closed


def test_a_code_block_cut_by_the_snippet_is_still_one_block() -> None:
    cut = "rsync -a public/ web01:/srv/site/\n```\n\nDeploys are logged in the team channel."
    answer = compose_answer("Where are deploys logged?", one(cut))
    assert answer == "Deploys are logged in the team channel. [1]"


def test_an_faq_answers_with_the_answer_not_the_question() -> None:
    answer = compose_answer("Can kids climb here?", one(FAQ_TEXT, "faq.txt"))
    assert "from 8 years" in answer
    assert "Can children climb?" not in answer and "A:" not in answer and "Q:" not in answer


def test_a_superseded_rule_answers_only_questions_about_the_past() -> None:
    now = compose_answer("How long can I borrow a book for?", one(POLICY_VERSIONS))
    assert "21 days" in now and "14 days" not in now
    before = compose_answer("How long could books be borrowed for under the previous rules?", one(POLICY_VERSIONS))
    assert "14 days" in before


def test_a_json_record_sentence_is_quoted_with_the_records_name() -> None:
    answer = compose_answer("Which shoe is best for long runs?", SNIPPETS)
    assert answer.startswith("Road Glide: A cushioned road shoe for long runs")


@pytest.mark.parametrize(
    ("question", "follow_up"),
    [
        ("How long does it take?", True),
        ("And for the secondary carer?", True),
        ("What about the warranty?", True),
        ("When was it built?", True),
        ("Which lighthouse is the oldest?", False),
        ("How many days of annual leave do I get?", False),
        ("Is it possible to bring a dog to the Berlin office?", False),
    ],
)
def test_which_questions_are_follow_ups(question: str, follow_up: bool) -> None:
    assert is_follow_up(question) is follow_up


def test_a_new_question_is_not_read_with_the_one_before() -> None:
    # Read with the router question before it, the leave question must not borrow the router's words.
    alone = compose_answer("How many days of annual leave do I get?", SNIPPETS)
    after = compose_answer("How many days of annual leave do I get?", SNIPPETS, before="How do I reset the router?")
    assert after == alone and "router" not in after


def test_words_alone_when_there_is_no_embedder() -> None:
    # Without embeddings the model still answers by its words (the embedder is optional at run time).
    answer = compose_answer("How do I reset the router?", SNIPPETS, embed=None)
    assert "Hold the reset button on the back for ten seconds" in answer


OPENING = """# Pottery studio

The studio is open on weekdays only, from 9:00 to 17:30. Members get a key for evenings.

The kiln is fired every Thursday.
"""


def test_what_time_asks_for_a_time_and_a_weekday_is_no_name_the_files_must_hold() -> None:
    answer = compose_answer("What time does the studio close on a Saturday?", one(OPENING))
    assert answer == "The studio is open on weekdays only, from 9:00 to 17:30. [1]"


def test_how_a_request_is_put_is_not_what_it_is_about() -> None:
    # "show" would otherwise match "shows" anywhere; the request is for the deploy commands.
    assert compose_answer("Show me how to publish a new version", one(DEPLOY)).startswith("To publish a new version")
