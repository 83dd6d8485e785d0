"""The SMS text: one GSM-7 segment, with who, what, when and the correction hint intact."""

from __future__ import annotations

import pytest

from jeeves.notify.message import SMS_LIMIT, compose, gsm7_length, proposed_time, sender_name, to_gsm7
from jeeves.parsing import parse_email


def test_typographic_characters_are_transliterated_so_the_text_stays_gsm7():
    text = to_gsm7("“Quarterly” review – José’s office… Zürich ☕")
    assert gsm7_length(text) == len(text)  # every character is a one-septet GSM-7 character
    assert text == ('"Quarterly" review - José\'s office... Zürich ?')  # é and ü are GSM-7; the cup is not


def test_extension_characters_count_twice_and_unicode_is_not_gsm():
    assert gsm7_length("a{b}") == 6
    assert gsm7_length("☕") == -1


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Can we meet Tuesday at 3:30 pm?", "Tue 3:30pm"),
        ("how about tomorrow at noon", "tomorrow noon"),
        ("are you free on May 5th at 10am", "May 5 10am"),
        ("let's do 14:00 next friday", "next Fri 14:00"),
        ("meeting on 11/14 works", "11/14"),
        ("We should get together sometime.", None),
    ],
)
def test_proposed_time_is_found_when_the_text_gives_one(text, expected):
    assert proposed_time(text) == expected


def test_sender_name_prefers_the_display_name():
    assert sender_name('"Smith, Alice" <alice@example.com>') == "Smith, Alice"
    assert sender_name("bob@example.com") == "bob@example.com"
    assert sender_name("", "") == "someone"


def test_short_alert_has_everything():
    body = compose(message_pk=42, sender="Alice Smith <alice@example.com>", subject="Lunch", new_text="tomorrow at 1pm?")
    assert body == 'Alice Smith wants to meet (tomorrow 1pm), no place yet: "Lunch". #42 Wrong? jeeves label 42 0'


def test_when_replies_are_read_the_hint_is_a_reply():
    body = compose(message_pk=42, sender="Alice Smith <alice@example.com>", subject="Lunch", new_text="tomorrow at 1pm?",
                   reply_hint=True)
    assert body == 'Alice Smith wants to meet (tomorrow 1pm), no place yet: "Lunch". #42 Reply 0 if wrong'
    long = compose(message_pk=987654, sender="Bartholomew Fitzgerald-Worthington III <b@example.com>",
                   subject="Re: FW: Quarterly budget review – “final” numbers {draft} " * 3, reply_hint=True)
    assert 0 < gsm7_length(long) <= SMS_LIMIT and long.endswith("#987654 Reply 0 if wrong")


def test_long_subject_and_name_are_cut_but_id_and_hint_survive():
    body = compose(
        message_pk=987654,
        sender="Bartholomew Fitzgerald-Worthington III <b@example.com>",
        subject="Re: FW: Quarterly budget review – “final” numbers for the Houston office {draft} " * 3,
        new_text="Could we meet on Wednesday at 10:30am to go through it?",
    )
    assert 0 < gsm7_length(body) <= SMS_LIMIT
    assert body.endswith("#987654 Wrong? jeeves label 987654 0")
    assert "(Wed 10:30am)" in body and "Quarterly" in body


def test_every_corpus_message_makes_a_single_segment_alert(corpus_raw_messages):
    for pk, raw in enumerate(corpus_raw_messages[:400], start=1000):
        parsed = parse_email(raw)
        body = compose(message_pk=pk, sender=parsed.sender, subject=parsed.subject, new_text=parsed.new_text,
                       sender_address=parsed.sender_address)
        assert 0 < gsm7_length(body) <= SMS_LIMIT, body
        assert f"jeeves label {pk} 0" in body


def test_a_suggestion_fits_the_segment_and_gives_way_before_the_subject_is_unreadable():
    short = compose(message_pk=42, sender="Alice Smith <alice@example.com>", subject="Lunch", new_text="tomorrow at 1pm?",
                    places=["Ninfa's (met there 3 times)", "EB 32C2"])
    assert short == ('Alice Smith wants to meet (tomorrow 1pm), no place yet: "Lunch". '
                     "Suggest: Ninfa's (met there 3 times) or EB 32C2. #42 Wrong? jeeves label 42 0")
    long_subject = "Re: Quarterly review of the west desk gas positions and the new curve methodology"
    for places in (["Ninfa\u2019s (met there 3 times)", "Caf\u00e9 Annie"], ["Ninfa's (met there 3 times)"]):
        body = compose(message_pk=123456, sender='"Smith, Alice" <alice@example.com>', subject=long_subject,
                       new_text="Tuesday at 3pm?", places=places)
        assert gsm7_length(body) <= SMS_LIMIT
        assert body.endswith("#123456 Wrong? jeeves label 123456 0")
        assert "Suggest: Ninfa's (met there 3 times)." in body  # the second place gave way, the first stayed
        assert '"Re: Quarterly review of' in body  # and the subject is still readable
    # A suggestion that cannot fit at all is left out rather than cutting the id or the hint.
    body = compose(message_pk=7, sender="Alice <a@example.com>", subject="Lunch", places=["X" * 150])
    assert body == 'Alice wants to meet, no place yet: "Lunch". #7 Wrong? jeeves label 7 0'
