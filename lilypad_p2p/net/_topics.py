"""Typed gossip topics with a string round trip (lighthouse `types/topics.rs` style).

`/lilypad/1/market/<market>` carries the resource offers and match proposals of one market, and
their owners' cancellations; `/lilypad/1/jobs/<market>` carries its job offers and their
cancellations, which only solvers need (clients hear the matches, not each other's jobs);
`/lilypad/1/nodes` carries node records. `parse_topic(str(topic)) == topic` for every topic, and
anything else is a `TopicError`, so a peer-supplied topic string can never name a topic we do not
model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from lilypad_p2p.net._errors import TopicError

TOPIC_PREFIX = "/lilypad/1/"
MARKET_TOPIC_PREFIX = TOPIC_PREFIX + "market/"
JOBS_TOPIC_PREFIX = TOPIC_PREFIX + "jobs/"
NODES_TOPIC_STRING = TOPIC_PREFIX + "nodes"
# Same rule as NodeConfig's `markets` setting: lower-case, short, no separators that could
# smuggle a second path segment into a topic.
MARKET_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


def check_market_name(market: str) -> str:
    """Return `market` if it is a valid market name, else raise `TopicError`."""
    if not isinstance(market, str) or MARKET_NAME.fullmatch(market) is None:
        raise TopicError(
            f"market name {market!r} is invalid: 1-32 of a-z 0-9 _ -, starting alphanumeric"
        )
    return market


@dataclass(frozen=True, slots=True)
class _OneMarket:
    market: str
    PREFIX: ClassVar[str] = ""

    def __post_init__(self) -> None:
        check_market_name(self.market)

    def __str__(self) -> str:
        return self.PREFIX + self.market


@dataclass(frozen=True, slots=True)
class MarketTopic(_OneMarket):
    """The topic of one market: resource offers, match proposals, their cancellations."""

    PREFIX: ClassVar[str] = MARKET_TOPIC_PREFIX


@dataclass(frozen=True, slots=True)
class JobsTopic(_OneMarket):
    """The job offers of one market and their cancellations."""

    PREFIX: ClassVar[str] = JOBS_TOPIC_PREFIX


@dataclass(frozen=True, slots=True)
class NodesTopic:
    """The topic of node records."""

    def __str__(self) -> str:
        return NODES_TOPIC_STRING


Topic = MarketTopic | JobsTopic | NodesTopic
NODES_TOPIC = NodesTopic()


def parse_topic(topic: str) -> Topic:
    """Parse a topic string; raise `TopicError` for anything that is not exactly one of ours."""
    if not isinstance(topic, str):
        raise TopicError(f"topic must be a string, not {type(topic).__name__}")
    if topic == NODES_TOPIC_STRING:
        return NODES_TOPIC
    if topic.startswith(MARKET_TOPIC_PREFIX):
        return MarketTopic(topic[len(MARKET_TOPIC_PREFIX) :])
    if topic.startswith(JOBS_TOPIC_PREFIX):
        return JobsTopic(topic[len(JOBS_TOPIC_PREFIX) :])
    raise TopicError(f"unknown topic {topic[:80]!r}")
