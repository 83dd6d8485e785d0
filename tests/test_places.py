"""Place suggestions: the extractor on real-looking sentences, where the user met each
correspondent (SQLite and PostgreSQL), the alert text through the local Twilio API, and
``jeeves places``."""

from __future__ import annotations

import json
import mailbox
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime

import pytest
from sqlalchemy import select

from jeeves.cli import main
from jeeves.config import MailboxSettings, PlacesSettings, Settings
from jeeves.parsing import parse_email
from jeeves.places.suggest import alert_places, places_met, suggest
from jeeves.storage.records import DueRow
from jeeves.places.extract import SUGGEST_CONFIDENCE, extract_places
from jeeves.service import Jeeves
from jeeves.storage import NewMessage, PredictionInput, Store
from jeeves.storage.places import exchanged_with
from jeeves.storage.schema import OutboxEntry
from tests.fixtures_twilio import TEST_TO, notify_settings_for

ME = "me@example.com"
SALLY = "Sally Beck <sally.beck@example.com>"
BOB = "Bob Hall <bob.hall@example.com>"


def confident(text: str) -> list[tuple[str, str]]:
    return [(m.place, m.kind) for m in extract_places(text) if m.confidence >= SUGGEST_CONFIDENCE]


# --- the extractor -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Sounds good. See you at Ninfa's at noon.", [("Ninfa's", "restaurant")]),
        ("Let's meet in EB 32C2 on Tuesday at 3:30.", [("EB 32C2", "room")]),
        ("Why don't we do lunch at the Brasserie tomorrow?", [("the Brasserie", "restaurant")]),
        ("Subject: Budget review\nWhen: Tuesday, 3:00-4:00 PM\nLocation: EB3321\n", [("EB 3321", "room")]),
        ("Where: Mt Rainier\nWhen: Friday 10am", [("Mt Rainier", "venue")]),
        ("The meeting will be held in conference room 4102 at 2:00.", [("conference room 4102", "room")]),
        ("Please come by my office when you get a chance to discuss the curves.", [("my office", "office")]),
        ("The meeting will be in Jeff's office on Wednesday at 3:00.", [("Jeff's office", "office")]),
        ("We are meeting at 10:00am in his office (EB2861) to go over the model.", [("EB 2861", "room")]),
        ("Bob,\n\nThe group is going to meet at\nPalace Lanes (on Bellaire) from 3:00 to 5:30 tomorrow.\n\nJohn",
         [("Palace Lanes", "venue")]),
        ("I will meet you in the lobby of the Enron Building.", [("the lobby of the Enron Building", "venue")]),
        ("Join us for dinner at Morton's on Friday at 7pm.", [("Morton's", "restaurant")]),
        ("Just to confirm that we are going to meet at Larry's desk at 3:00 PM tomorrow.", [("Larry's desk", "office")]),
        ("Where: eb2865", [("EB 2865", "room")]),
    ],
)
def test_meeting_places_are_found_with_their_kind(text, expected):
    assert confident(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Can we meet at 3pm on Thursday?",
        "Please send me your comments at your convenience.",
        "I will see you at Enron next week.",
        "In the meantime, let me know what you think.",
        "Let's meet in Houston when you are back.",
        "Thanks for your support at the Board meeting today.",
        "Where: TBD\nWhen: Monday",
        "Location: Conference call, dial-in 800-555-0100",
        "Debra Perlingiere\nEnron North America Legal\n1400 Smith Street, EB 3885\nHouston, Texas 77002",
        "I am at EB3116e.",
        "It would help to meet with the relevant people in Gas Trading.",
        "I will be in San Marcos on Friday April 13th.",
        "Hope to see you at the Olympics in Salt Lake!",
        "We'll deliver a hard copy of these files to your office as well.",
        "At this point we need to calculate the operating expenses.",
        "Site visit\nLocation : 36.6950 N, 121.3250 W\nWhen: Monday",
    ],
)
def test_look_alikes_are_not_places(text):
    assert confident(text) == []


def test_the_evidence_locates_the_place_in_the_text():
    text = "Hi Sally,\n\nthanks for the notes. Let's grab lunch at Cafe Annie\non Thursday.\n\nMark"
    (mention,) = extract_places(text)
    assert text[mention.start:mention.end] == "Cafe Annie"
    assert mention.evidence == "Let's grab lunch at Cafe Annie on Thursday."
    assert extract_places("") == [] and extract_places("no place here, just words.") == []


# --- history and suggestions -------------------------------------------------------------


def _mail(sender: str, to: str, subject: str, body: str, day: int, msgid: str, *, reply_to: str | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime(2026, 10, 1, 9, tzinfo=timezone.utc) + timedelta(days=day))
    msg["Message-ID"] = f"<{msgid}@example.com>"
    if reply_to:
        msg["In-Reply-To"] = f"<{reply_to}@example.com>"
        msg["References"] = f"<{reply_to}@example.com>"
    msg.set_content(body)
    return msg.as_bytes()


#: Mail between the user and Sally (two conversations settle Ninfa's, one the user's office),
#: Bob (Cafe Annie), and mail that must not count for Sally.
HISTORY = [
    _mail(SALLY, ME, "Curves", "Works for me. See you at Ninfa's at noon on Tuesday.", 1, "h1"),
    _mail(SALLY, ME, "Re: Curves", "Great, see you at Ninfa's then.", 2, "h2", reply_to="h1"),  # same conversation
    _mail(SALLY, ME, "Storage deal", "Let's grab lunch at Ninfa's on Friday to go over it.", 5, "h3"),
    _mail(ME, "sally.beck@example.com", "Q3 plan", "Sally, let's meet in my office at 2 to walk through it.", 8, "h4"),
    _mail(ME, "jim.sally.beck@example.com", "Other", "Let's meet at Brennan's at noon.", 9, "h5"),  # not Sally
    _mail(BOB, ME, "Drinks", "See you at Cafe Annie at 6.", 10, "h6"),
    _mail(SALLY, ME, "Travel", "I will be in San Marcos on Friday.", 11, "h7"),  # a town, not a place met
]


def _store_all(store: Store, raws: list[bytes]) -> list[int]:
    return [ref.pk for ref in store.store_batch([NewMessage(raw, parse_email(raw)) for raw in raws])]


def _settings(**places) -> Settings:
    return Settings(places=PlacesSettings(my_addresses=[ME], **places))


def test_places_met_come_from_mail_between_the_two_on_each_database(db_url):
    store = Store(db_url)
    _store_all(store, HISTORY)
    request = _mail(SALLY, ME, "Next week", "Can we get together Tuesday afternoon to go over the storage numbers?", 20, "r1")
    (request_pk,) = _store_all(store, [request])
    history = exchanged_with(store, "sally.beck@example.com", [ME], exclude_pk=request_pk)
    assert sorted(m.message_pk for m in history if m.from_user) == [4]  # h5 went to jim.sally.beck@, not Sally
    assert len(history) == 5
    newest = exchanged_with(store, "sally.beck@example.com", [ME], exclude_pk=request_pk, limit=2)
    assert [m.message_pk for m in newest] == [4, 7]  # the newest two with Sally (h5 is not hers)
    met = places_met(history, correspondent_name="Sally")
    assert [(p.place, p.times) for p in met] == [("Ninfa's", 2), ("your office", 1)]
    message = store.get_message(request_pk)
    alert = DueRow(id=1, attempts=0, kind="alert", message_pk=request_pk, conversation_key="", body=None,
                   sender=message.sender, sender_address=message.sender_address, subject=message.subject,
                   new_text=message.new_text)
    assert alert_places(store, _settings(favourites=["Cafe Annie"]).places, [ME], alert) == [
        "Ninfa's (met there 2 times)", "your office (met there once)"]
    assert alert_places(store, _settings(suggest=False).places, [ME], alert) == []
    learned = {c.address: [(p.place, p.times) for p in c.places] for c in Jeeves(_settings(), store=store).places()}
    assert learned == {"sally.beck@example.com": [("Ninfa's", 2), ("your office", 1)],
                       "bob.hall@example.com": [("Cafe Annie", 1)],
                       "jim.sally.beck@example.com": [("Brennan's", 1)]}
    store.close()


def test_favourites_fill_up_and_nothing_is_suggested_when_unsure():
    met = places_met([])
    assert suggest(met, ["Ninfa's", "EB 32C2", "Cafe Annie"], "Can we get together Tuesday?") == ["Ninfa's", "EB 32C2"]
    assert suggest(met, [], "Can we get together Tuesday?") == []
    # A call needs no place, and a request that names one already has it.
    assert suggest(met, ["Ninfa's"], "Can we have a quick call Tuesday at 3?") == []
    assert suggest(met, ["Ninfa's"], "Can we meet in EB 32C2 on Tuesday?") == []


def test_a_favourite_already_met_at_is_suggested_once():
    from jeeves.storage.places import Exchanged

    history = [Exchanged(1, "b@x.com", False, "Bob <b@x.com>", "t1", None, "See you at the Brasserie at noon.")]
    assert suggest(places_met(history), ["Brasserie", "Ninfa's"], "Lunch Tuesday?") == [
        "the Brasserie (met there once)", "Ninfa's"]


def test_a_desk_is_said_from_the_reader_side_like_an_office():
    from jeeves.storage.places import Exchanged

    history = [Exchanged(1, "s@x.com", False, "Sally Beck <s@x.com>", "t1", None, "Let's meet at my desk at 3."),
               Exchanged(2, "s@x.com", True, "Me <me@x.com>", "t2", None, "Sure, meet me at my desk at 4.")]
    assert sorted(p.place for p in places_met(history)) == ["Sally's desk", "your desk"]


# --- the alert, end to end ---------------------------------------------------------------


def test_the_alert_suggests_where_they_met_through_the_twilio_api(tmp_path, twilio_server):
    """A whole pass with the shipped model: the history was imported (never texted), Sally's new
    request arrives in a watched mailbox, is classified as a request and texted through the
    Twilio API with the place of their two earlier meetings. The text is committed before it
    is sent, so the next pass sends nothing new."""
    history, inbox = tmp_path / "history.mbox", tmp_path / "inbox.mbox"
    _write_mbox(history, HISTORY)
    _write_mbox(inbox, [_mail(SALLY, ME, "Storage numbers",
                              "Can we get together Tuesday afternoon to go over the storage numbers?", 20, "r2")])
    settings = notify_settings_for(twilio_server).model_copy(update={
        "database": Settings().database.model_copy(update={"url": f"sqlite:///{tmp_path / 'j.db'}"}),
        "mailboxes": [MailboxSettings(path=inbox, notify=True)],
        "places": PlacesSettings(my_addresses=[ME], favourites=["EB 32C2"]),
    })
    app = Jeeves(settings)
    assert app.import_path(history).stored == len(HISTORY)
    report = app.run_once()
    assert (report.stored, report.classify.queued, report.notify.sent) == (1, 1, 1)
    request_pk = app.store.get_message("<r2@example.com>").id
    (body,) = twilio_server.bodies()
    # With replies read, the hint is short enough for both places within one segment.
    assert body == (f'Sally Beck wants to meet (Tue), no place yet: "Storage numbers". '
                    f"Suggest: Ninfa's (met there 2 times) or your office (met there once). #{request_pk} Reply 0 if wrong")
    assert len(body) <= 160 and twilio_server.sms_to(TEST_TO)
    with app.store.session() as s:
        assert s.scalar(select(OutboxEntry.body).where(OutboxEntry.message_pk == request_pk)) == body
    assert app.run_once().notify.sent == 0 and len(twilio_server.bodies()) == 1
    app.close()


def _write_mbox(path, raws: list[bytes]) -> None:
    box = mailbox.mbox(path)
    for raw in raws:
        box.add(raw)
    box.flush()


# --- the command --------------------------------------------------------------------------


def test_jeeves_places_lists_what_it_learned(tmp_path, capsys):
    _write_mbox(tmp_path / "mail.mbox", HISTORY)
    config = tmp_path / "jeeves.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n[places]\nmy_addresses = ["{ME}"]\n')
    assert main(["-c", str(config), "import", str(tmp_path / "mail.mbox")]) == 0
    capsys.readouterr()
    assert main(["-c", str(config), "places"]) == 0
    out = capsys.readouterr().out
    assert "Sally Beck <sally.beck@example.com>\n  Ninfa's (restaurant): 2 conversation(s), last 2026-10-06\n" in out
    assert "  your office (office): 1 conversation(s)" in out and "Cafe Annie" in out and "San Marcos" not in out
    assert main(["-c", str(config), "places", "bob.hall@example.com"]) == 0
    assert capsys.readouterr().out.startswith("Bob Hall <bob.hall@example.com>\n  Cafe Annie (restaurant)")
    assert main(["-c", str(config), "places", "--json", "sally.beck@example.com"]) == 0
    (sally,) = json.loads(capsys.readouterr().out)
    assert sally["name"] == "Sally Beck" and [(p["place"], p["times"]) for p in sally["places"]] == [
        ("Ninfa's", 2), ("your office", 1)]
    assert sally["places"][0]["evidence"] == "Let's grab lunch at Ninfa's on Friday to go over it."
    assert main(["-c", str(config), "places", "nobody@example.com"]) == 0
    assert capsys.readouterr().out == "no meeting places found in stored mail with nobody@example.com\n"


class _Crash(Exception):
    pass


def test_a_send_interrupted_by_a_crash_repeats_the_same_suggestion(tmp_path, twilio_server):
    """The text, suggestion included, is committed with the attempt before Twilio is called: a
    sender killed right there is reconciled and resends that text, even though mail stored in
    between would now suggest otherwise — one SMS, the same words."""
    from jeeves.notify import make_notifier
    from jeeves.notify.outbox import OutboxSender, SenderSettings
    from tests.fixtures_twilio import FakeClock

    settings = notify_settings_for(twilio_server).model_copy(update={
        "places": PlacesSettings(my_addresses=[ME])})
    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    _store_all(store, HISTORY)
    (request_pk,) = _store_all(store, [_mail(SALLY, ME, "Numbers", "Can we get together Tuesday?", 20, "r3")])
    store.record_predictions("test-model", [PredictionInput(request_pk, 0.95, 0.5, True)])
    clock = FakeClock()

    def crash_after_claim(step, row_id):
        if step == "after-claim":
            raise _Crash(step)

    first = OutboxSender(store, SenderSettings.from_settings(settings), make_notifier(settings.notify.channel, settings.twilio), worker_id="w1", clock=clock, on_step=crash_after_claim)
    with pytest.raises(_Crash):
        first.run_once()
    with store.session() as s:
        committed = s.scalar(select(OutboxEntry.body).where(OutboxEntry.message_pk == request_pk))
    assert "Suggest: Ninfa's (met there 2 times)" in committed and not twilio_server.bodies()
    # While the sender was down, two more conversations with Sally settled Cafe Annie.
    _store_all(store, [_mail(SALLY, ME, "A", "See you at Cafe Annie at noon.", 21, "n1"),
                       _mail(SALLY, ME, "B", "Let's grab lunch at Cafe Annie on Monday.", 22, "n2"),
                       _mail(SALLY, ME, "C", "Lunch at Cafe Annie again on Friday?", 23, "n3")])
    clock.advance(minutes=10)
    restarted = OutboxSender(store, SenderSettings.from_settings(settings), make_notifier(settings.notify.channel, settings.twilio), worker_id="w1", clock=clock)
    for _ in range(3):
        restarted.run_once()
    assert twilio_server.bodies() == [committed]
    store.close()
