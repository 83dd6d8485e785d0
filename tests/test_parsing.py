"""MIME to clean text: the classifier reads the sender's new text; nothing ever raises."""

from __future__ import annotations

from email.message import EmailMessage

from jeeves.bodytext import split_quoted
from jeeves.parsing import parse_email, thread_key


def _mime(body: str, *, subtype: str = "plain", charset: str = "utf-8", **headers) -> bytes:
    msg = EmailMessage()
    for key, value in {"From": "Ann Lee <ann@example.com>", "To": "bob@example.com", "Subject": "Lunch?", **headers}.items():
        msg[key.replace("_", "-")] = value
    msg.set_content(body, subtype=subtype, charset=charset)
    return msg.as_bytes()


def test_outlook_reply_history_is_separated():
    body = "Can we meet Tuesday?\n\n-----Original Message-----\nFrom: Bob\nSent: Monday\n\nLet's meet in EB 3321."
    new, quoted = split_quoted(body)
    assert new == "Can we meet Tuesday?"
    assert "EB 3321" in quoted


def test_lotus_notes_forward_history_is_separated():
    body = (
        "can we get together to discuss?\nthanks,\nJeff\n"
        "---------------------- Forwarded by Jefferson D Sorenson/HOU/ECT on \n07/07/2000 08:51 AM ---\n\n"
        "Jeff Johnson@ENRON\n07/06/2000 06:14 PM\nTo: Ron Nolte/HOU/ECT@ECT\nSubject: Faxing\n\nold text"
    )
    new, quoted = split_quoted(body)
    assert new.startswith("can we get together") and "old text" not in new
    assert "old text" in quoted


def test_angle_quoted_lines_and_wrote_header_are_history():
    new, quoted = split_quoted("Sounds good, where?\n\nOn Mon, Jan 1, 2001, Ann wrote:\n> lunch Friday?\n")
    assert new == "Sounds good, where?"
    assert "> lunch Friday?" in quoted


def test_html_only_message_becomes_text():
    parsed = parse_email(_mime("<html><body><p>Coffee <b>tomorrow</b>?</p><script>x()</script></body></html>", subtype="html"))
    assert "Coffee" in parsed.new_text and "tomorrow" in parsed.new_text
    assert "<b>" not in parsed.new_text and "x()" not in parsed.new_text


def test_unknown_charset_is_decoded_with_a_fallback_and_noted():
    raw = (
        b"From: a@example.com\nTo: b@example.com\nSubject: hi\nMIME-Version: 1.0\n"
        b"Content-Type: text/plain; charset=x-no-such-charset\nContent-Transfer-Encoding: 8bit\n\n"
        b"Caf\xc3\xa9 on Friday?\n"
    )
    parsed = parse_email(raw)
    assert "Café on Friday?" in parsed.new_text
    assert any("unknown charset" in d for d in parsed.defects)


def test_encoded_headers_and_metadata():
    parsed = parse_email(_mime("Lunch next week?", Subject="=?utf-8?q?Re=3A_D=C3=A9jeuner?=", Cc="c@example.com, d@example.com"))
    assert parsed.subject == "Re: Déjeuner"
    assert parsed.is_reply and not parsed.is_forward
    assert parsed.n_recipients == 3
    assert parsed.sender_address == "ann@example.com"
    assert parsed.thread_key == "déjeuner"


def test_garbage_never_raises():
    for raw in [b"", b"\x00\xff\xfe" * 100, b"Content-Type: multipart/mixed; boundary=\n\n--\n--", b"Subject: =?bad?Q?x?=\n\nbody"]:
        parsed = parse_email(raw)
        assert isinstance(parsed.new_text, str)
        assert len(parsed.content_hash) == 64


def test_missing_message_id_is_none_and_hash_still_identifies():
    raw = _mime("Dinner?")
    assert parse_email(raw).message_id is None
    assert parse_email(raw).content_hash == parse_email(raw.replace(b"\n", b"\r\n")).content_hash


def test_thread_key_strips_reply_and_forward_prefixes():
    assert thread_key("RE: Fw: re[2]:  Budget   Meeting") == "budget meeting"


def test_every_corpus_message_parses_with_new_text(corpus_raw_messages):
    parsed = [parse_email(raw) for raw in corpus_raw_messages[:500]]
    assert all(p.message_id for p in parsed)
    assert sum(bool(p.new_text) for p in parsed) >= 495


def test_original_message_marker_glued_to_the_last_line_is_history():
    new, quoted = split_quoted("Let's meet this week.  Stan----- Original Message -----\nFrom: Bob\nSent: Monday\nold")
    assert new == "Let's meet this week.  Stan" and "old" in quoted


def test_inline_forwarded_headers_are_history_but_a_typed_list_is_not():
    forwarded = "\n\nContent-Transfer-Encoding: 7bit\nFrom: don@cs.com\nDate: Tue, 11 Dec 2001\nSubject: Hey\nTo: kim@enron.com\n\nwould love to get together!"
    new, quoted = split_quoted(forwarded)
    assert new == "" and "get together" in quoted
    lotus = "What are you looking for?\n\n\n\nTo: Chris Germany/HOU/ECT@ECT\ncc:  \nSubject: Re: Question\n\nold reply"
    assert split_quoted(lotus)[0] == "What are you looking for?"
    typed = "Lunch next week?\nTime: noon\nPlace: TBD\nSubject: budget\nDate: Friday\n"
    assert split_quoted(typed) == (typed.strip(), "")
