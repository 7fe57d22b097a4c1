import pytest
from hypothesis import given
from hypothesis import strategies as st

from lilypad_p2p.net import (
    NODES_TOPIC,
    JobsTopic,
    MarketTopic,
    TopicError,
    check_market_name,
    parse_topic,
)

markets = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,31}", fullmatch=True)


@given(markets)
def test_market_topic_round_trips(market):
    topic = MarketTopic(market)
    assert str(topic) == f"/lilypad/1/market/{market}"
    assert parse_topic(str(topic)) == topic


@given(markets)
def test_jobs_topic_round_trips_and_differs_from_its_market_topic(market):
    topic = JobsTopic(market)
    assert str(topic) == f"/lilypad/1/jobs/{market}"
    assert parse_topic(str(topic)) == topic
    assert topic != MarketTopic(market)


def test_nodes_topic_round_trips():
    assert str(NODES_TOPIC) == "/lilypad/1/nodes"
    assert parse_topic("/lilypad/1/nodes") is NODES_TOPIC


@pytest.mark.parametrize(
    "topic",
    [
        "",
        "/lilypad/1/market/",
        "/lilypad/1/market/CPU",
        "/lilypad/1/market/cpu/extra",
        "/lilypad/1/market/../nodes",
        "/lilypad/1/market/-cpu",
        "/lilypad/1/market/" + "a" * 33,
        "/lilypad/2/market/cpu",
        "/lilypad/1/nodes/",
        "/lilypad/1/Nodes",
        "lilypad/1/nodes",
        "/lilypad/1/market/cpu\n",
        "/lilypad/1/market/cpu ",
        "/lilypad/1/market/gpu\x00",
    ],
)
def test_malicious_topics_are_rejected(topic):
    with pytest.raises(TopicError):
        parse_topic(topic)


@given(st.text(max_size=60))
def test_any_string_parses_to_itself_or_raises_topic_error(text):
    try:
        topic = parse_topic(text)
    except TopicError:
        return
    assert str(topic) == text


@pytest.mark.parametrize("market", ["", "Cpu", "gpu/a", "_x", "a" * 33, "gpu a"])
def test_bad_market_names_are_rejected(market):
    with pytest.raises(TopicError):
        check_market_name(market)
    with pytest.raises(TopicError):
        MarketTopic(market)


def test_topic_error_is_a_net_error_and_value_error():
    from lilypad_p2p.errors import LilypadError

    assert issubclass(TopicError, LilypadError)
    assert issubclass(TopicError, ValueError)
