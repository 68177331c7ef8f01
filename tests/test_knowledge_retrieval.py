"""Retrieval and learning end to end: real Chroma on disk, SQLite FTS5, the real model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from knowledge.context import (
    FAILURES_HEADING,
    FILES_HEADING,
    PATTERNS_HEADING,
    NullRetriever,
    RetrievedContext,
    estimate_tokens,
)
from knowledge.embeddings import SentenceTransformerEmbedder
from knowledge.learning import PullRequestOutcome, TaskFailure
from knowledge.lexical import LexicalIndex
from knowledge.service import KnowledgeService
from knowledge.store import ChromaStore

SHOP = "acme/shop"
OTHER = "acme/other"

SHOP_FILES = {
    "shop/pricing.py": '''"""Prices, currencies and exchange rates."""

from decimal import Decimal


def convert(amount: Decimal, rate: Decimal) -> Decimal:
    """Convert an amount with an exchange rate, rounding half up to cents."""
    return (amount * rate).quantize(Decimal("0.01"))


def fetch_exchange_rate(source: str, target: str) -> Decimal:
    """Ask the rates API for today's exchange rate between two currencies."""
    raise NotImplementedError
''',
    "shop/cache.py": '''"""A cache shared by all workers, backed by Redis."""


class RedisCache:
    """Values cached in Redis with a time to live, visible to every worker."""

    def __init__(self, client, ttl_seconds: int = 300):
        self.client = client
        self.ttl_seconds = ttl_seconds

    def get(self, key):
        return self.client.get(key)

    def set(self, key, value):
        self.client.set(key, value, ex=self.ttl_seconds)
''',
    "shop/cart.py": '''"""The shopping cart."""


class Cart:
    """Items a customer is about to buy."""

    def __init__(self):
        self.items = []

    def add(self, product, quantity=1):
        """Add a product, merging quantities of the same product."""
        self.items.append((product, quantity))

    def total(self):
        return sum(product.price * quantity for product, quantity in self.items)
''',
    "shop/emails.py": '''"""Order confirmation e-mails."""


def send_confirmation(order, mailer):
    """Send the customer a confirmation e-mail for their order."""
    mailer.send(order.customer_email, subject=f"Order {order.id}")
''',
    "README.md": "# Shop\n\nA small online shop.\n\n## Running\n\nStart the web server.\n",
}

REVIEW_COMMENT = (
    "Do not use functools.lru_cache for the exchange rates: it is per process and never expires. "
    "Use RedisCache from shop/cache.py instead."
)


@pytest.fixture(scope="module")
def model() -> SentenceTransformerEmbedder:
    embedder = SentenceTransformerEmbedder()
    embedder.embed(["warm up"])
    return embedder


@pytest.fixture
def service(tmp_path: Path, model: SentenceTransformerEmbedder) -> Iterator[KnowledgeService]:
    knowledge = KnowledgeService(
        store=ChromaStore(path=tmp_path / "chroma"),
        embedder=model,
        lexical=LexicalIndex(tmp_path / "lexical.db"),
    )
    knowledge.indexer.index_files(SHOP, SHOP_FILES.items())
    knowledge.indexer.index_files(OTHER, [("app.py", "def main():\n    print('hello')\n")])
    yield knowledge
    knowledge.close()


def _rejected_caching_pr() -> PullRequestOutcome:
    return PullRequestOutcome(
        repository=SHOP,
        pr_number=41,
        merged=False,
        issue_number=40,
        issue_title="Exchange rates are fetched on every request",
        issue_body="Each price conversion calls the rates API; cache the exchange rate.",
        plan="Wrap fetch_exchange_rate in functools.lru_cache.",
        files=["shop/pricing.py"],
        review_comments=[REVIEW_COMMENT],
        closing_comment="Closing: see review.",
    )


async def test_a_rejected_review_comment_reaches_a_later_similar_issue_on_the_same_repository_only(
    service: KnowledgeService,
) -> None:
    await service.record_pull_request(_rejected_caching_pr())
    later_issue = (
        "Converting prices is slow\n\n"
        "Every checkout converts prices and asks the exchange rate API again. Please cache the rates."
    )

    same_repo = (await service.retrieve(SHOP, later_issue)).render()
    other_repo = (await service.retrieve(OTHER, later_issue)).render()

    assert FAILURES_HEADING in same_repo
    failures_section = same_repo.split(FAILURES_HEADING, 1)[1]
    assert "Do not use functools.lru_cache for the exchange rates" in failures_section
    assert "PR #41" in failures_section and "was closed without merging" in failures_section
    assert "functools.lru_cache" not in other_repo
    assert FAILURES_HEADING not in other_repo


async def test_a_merged_pull_request_is_offered_as_a_pattern(service: KnowledgeService) -> None:
    await service.record_pull_request(
        PullRequestOutcome(
            repository=SHOP,
            pr_number=52,
            merged=True,
            issue_number=50,
            issue_title="Cart merges the same product into one line",
            issue_body="Adding the same product twice should increase its quantity.",
            plan="In Cart.add, look for an existing line for the product and add to its quantity.",
            diff_summary="shop/cart.py: Cart.add merges quantities",
            files=["shop/cart.py"],
            review_comments=["Nice and small."],
        )
    )

    context = await service.retrieve(
        SHOP, "Adding a product that is already in the cart creates a duplicate line"
    )

    assert [lesson.pr_number for lesson in context.patterns] == [52]
    rendered = context.render()
    assert PATTERNS_HEADING in rendered
    assert "look for an existing line for the product" in rendered.split(PATTERNS_HEADING, 1)[1]


async def test_an_unrelated_issue_does_not_drag_in_past_failures(service: KnowledgeService) -> None:
    await service.record_pull_request(_rejected_caching_pr())

    context = await service.retrieve(
        SHOP, "The confirmation e-mail subject should include the shop name"
    )

    assert context.failures == ()
    assert context.files[0].path == "shop/emails.py"


async def test_task_failures_are_remembered_with_their_error(service: KnowledgeService) -> None:
    await service.record_task_failure(
        TaskFailure(
            repository=SHOP,
            task="test",
            error="ImportError: cannot import name 'RedisCache' from 'shop.cache_v2'",
            issue_number=60,
            issue_title="Use the shared Redis cache for exchange rates",
        )
    )

    context = await service.retrieve(SHOP, "Cache exchange rates in the shared Redis cache")

    assert any("cannot import name 'RedisCache'" in lesson.text for lesson in context.failures)


async def test_files_come_ranked_with_the_reason_they_were_chosen(
    service: KnowledgeService,
) -> None:
    context = await service.retrieve(
        SHOP, "Prices converted to euros are rounded to the wrong cent"
    )

    assert context.files[0].path == "shop/pricing.py"
    reasons = " ".join(context.files[0].reasons)
    assert "keyword match" in reasons and "semantic match" in reasons
    rendered = context.render()
    assert rendered.startswith(FILES_HEADING)
    assert "def convert(amount: Decimal, rate: Decimal)" in rendered
    assert len({f.path for f in context.files}) == len(context.files)


async def test_a_stack_trace_frame_points_at_its_file_and_line(service: KnowledgeService) -> None:
    issue = (
        "Checkout crashes\n\n```\nTraceback (most recent call last):\n"
        '  File "/srv/app/shop/cart.py", line 15, in total\n'
        "AttributeError: 'dict' object has no attribute 'price'\n```"
    )

    context = await service.retrieve(SHOP, issue)

    top = context.files[0]
    assert top.path == "shop/cart.py"
    assert top.reasons[0] == "stack-trace frame at line 15"
    assert any(s.start_line <= 15 <= s.end_line for s in top.snippets)


async def test_the_context_fits_its_token_budget(service: KnowledgeService) -> None:
    await service.record_pull_request(_rejected_caching_pr())
    query = "Cache the exchange rate lookups used when converting prices"

    small = await service.retrieve(SHOP, query, token_budget=250)
    large = await service.retrieve(SHOP, query, token_budget=6000)

    assert 0 < estimate_tokens(small.render()) <= 250
    assert estimate_tokens(large.render()) <= 6000
    assert len(large.render()) > len(small.render())
    assert sum(len(f.snippets) for f in large.files) > sum(len(f.snippets) for f in small.files)


async def test_search_is_scoped_to_the_repository(service: KnowledgeService) -> None:
    context = await service.retrieve(OTHER, "exchange rate cache for prices")

    assert {f.path for f in context.files} <= {"app.py"}


async def test_null_retriever_gives_an_empty_context() -> None:
    context = await NullRetriever().retrieve(SHOP, "anything")

    assert context == RetrievedContext.empty(SHOP, "anything")
    assert context.is_empty and context.render() == ""


async def test_recording_the_same_pull_request_twice_keeps_one_lesson(
    service: KnowledgeService,
) -> None:
    first = await service.record_pull_request(_rejected_caching_pr())
    second = await service.record_pull_request(_rejected_caching_pr())

    assert first == second
    context = await service.retrieve(
        SHOP, "Cache the exchange rates instead of calling the API every time"
    )
    assert len(context.failures) == 1
