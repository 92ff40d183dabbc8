"""cobro.notices: an action's notice is its text (for the CLI and the API) and its keys (for
the dashboard's URL); a URL can only name messages of the fixed list, with safe values, and
they are translated in the reader's language."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
from starlette.datastructures import QueryParams

from cobro.i18n import using
from cobro.notices import MESSAGES, PRIVATE, Notice, from_query, notice, query


def test_a_notice_is_its_text_and_its_keys() -> None:
    said = notice("alerts_acknowledged", "not_open", num=5, ids="3,4")
    assert said == "5 alerts acknowledged (3,4 not open)" and isinstance(said, str)
    assert said.keys == ("alerts_acknowledged", "not_open")
    assert parse_qsl(query(said)) == [
        ("notice", "alerts_acknowledged"),
        ("notice", "not_open"),
        ("n.num", "5"),
        ("n.ids", "3,4"),
    ]
    assert from_query(QueryParams(query(said))) == said
    with pytest.raises(KeyError):
        notice("no_such_message")


def test_translated_in_the_readers_language() -> None:
    url = QueryParams(query(notice("task_taken", id=12)))
    with using("es"):
        assert from_query(url) == "tarea 12 es suya" or from_query(url) != "task 12 is yours"
    with using("fr"):
        assert "12" in from_query(url) and from_query(url) != "task 12 is yours"


@pytest.mark.parametrize(
    "forged",
    [
        "notice=Your+session+expired%3A+call+%2B1-555-0100",  # free text: not a key
        "notice=owner_set&n.account=Call%20us%20now&n.who=x",  # a value with spaces
        "notice=__class__",
        "notice=alerts_acknowledged&n.num=many",  # a count that is not a number
        "notice=alerts_acknowledged",  # no count
        "notice=paused&notice=nope",
        "",
    ],
)
def test_a_url_cannot_make_the_server_say_anything(forged: str) -> None:
    text = from_query(QueryParams(forged))
    assert "call" not in text.lower() and "Call us" not in text
    if "n.account" in forged:
        assert text == "… is now owned by x"
    else:
        assert text == ""


def test_private_values_never_reach_the_url() -> None:
    said = notice("resent", channel="email", recipient="ap@acme.example", message_id="<a@b>")
    assert (
        "ap@acme.example" in said and "ap%40acme" not in query(said) and "acme" not in query(said)
    )
    assert from_query(QueryParams(query(said))) == "email to … resent (Message-ID …)"


def test_a_plain_string_is_only_done() -> None:
    assert query("free text from somewhere") == "notice=done"
    assert from_query(QueryParams("notice=done")) == "Done."


def test_every_message_renders_with_its_own_parameters() -> None:
    for key, message in MESSAGES.items():
        text = message[1](7) if isinstance(message, tuple) else message
        names = {part.split(")")[0] for part in text.split("%(")[1:]}
        said = Notice([key], **{n: "7" for n in names})
        assert "%(" not in said, key
        shown = from_query(QueryParams(query(said)))
        if names & PRIVATE:
            assert "…" in shown and shown.replace("…", "7") == said, key
        else:
            assert shown == said, key
