"""MQTT topics and topic filters: validity and matching (pure functions)."""

from __future__ import annotations

MAX_TOPIC_BYTES = 65535


def topic_problem(topic: str, *, allow_wildcards: bool) -> str | None:
    """Why *topic* is not a usable MQTT topic (or filter), or None."""
    if not topic:
        return "the topic is empty"
    if "\x00" in topic:
        return "the topic contains a NUL character"
    if topic.startswith("$"):
        return "the topic starts with '$', which is reserved for the broker"
    levels = topic.split("/")
    if "" in levels:
        return "the topic has an empty level"
    for index, level in enumerate(levels):
        if level in ("+", "#"):
            if not allow_wildcards:
                return f"the topic contains the wildcard {level!r} (a sender needs one topic)"
            if level == "#" and index != len(levels) - 1:
                return "'#' must be the last level of a topic filter"
        elif "+" in level or "#" in level:
            return f"the level {level!r} mixes a wildcard with other characters"
    try:
        size = len(topic.encode("utf-8"))
    except UnicodeEncodeError:
        return "the topic is not valid UTF-8"
    if size > MAX_TOPIC_BYTES:
        return f"the topic is longer than {MAX_TOPIC_BYTES} bytes"
    return None


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching (``+`` one level, ``#`` the rest, ``$`` topics need a literal)."""
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    if topic.startswith("$") and filter_levels[0] in ("+", "#"):
        return False
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)
