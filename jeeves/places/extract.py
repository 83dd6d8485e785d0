"""Meeting places settled in mail: "see you at Ninfa's", "meet in EB 32C2", ``Location: ...``.

Jeeves suggests places in its texts, and a wrong suggestion is worse than none, so this
extractor is built for precision: it only reports a place when a cue says a meeting happens
there (a meeting verb or meal before "at"/"in", a calendar ``Location:``/``Where:`` field, an
Enron-style room code, "my office"), and the place itself looks like one (a capitalised name, a
room code, an office) rather than a time ("at 3pm"), a manner ("at your convenience"), a
company or city ("at Enron", "in Houston") or an event ("at the Board meeting"). Anything else
is silently left out. Pure and cheap (regular expressions, NLTK's Punkt sentence splitter with
its built-in parameters, no model or data to load), so it can run on demand over a
correspondent's whole history. ``docs/places-report.md`` has its measured precision and recall.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

#: Mentions below this confidence are never used for suggestions (they are still returned, so
#: the bench can show what a looser rule would add).
SUGGEST_CONFIDENCE = 0.8

ROOM, OFFICE, RESTAURANT, VENUE = "room", "office", "restaurant", "venue"
KINDS = (ROOM, OFFICE, RESTAURANT, VENUE)


@dataclass(frozen=True)
class PlaceMention:
    """One place in a text: ``place`` is for display, ``start``/``end`` locate it in the text."""

    place: str
    kind: str  # room | office | restaurant | venue
    start: int
    end: int
    evidence: str  # the sentence (or calendar line) that settles it
    confidence: float

    @property
    def key(self) -> str:
        """What two mentions of one place share ("the Brasserie" and "Brasserie")."""
        return place_key(self.place)


def place_key(place: str) -> str:
    """Case, spacing, punctuation and a leading "the" ignored: "EB 32C2" is "eb32c2"."""
    text = re.sub(r"^the\s+", "", place.strip(), flags=re.IGNORECASE)
    return re.sub(r"[^a-z0-9]+", "", text.lower())


# --- vocabulary --------------------------------------------------------------------------

_MONTHS = "january february march april may june july august september october november december jan feb mar apr jun jul aug sep sept oct nov dec"
_DAYS = "monday tuesday wednesday thursday friday saturday sunday mon tue tues wed thu thur thurs fri sat sun today tomorrow tonight noon midnight"
#: Capitalised words that follow "at"/"in" without naming a place one meets at.
_NOT_PLACES = frozenset(
    (_MONTHS + " " + _DAYS + " "
     # companies, groups and markets (a meeting "at Enron" says nothing about where)
     "enron ena ees ews ebs egs ets ect enron's corp corporation inc llc company group team dept department "
     "i you we he she they it this that these those my your our his her their all any each some no one "
     "houston portland london calgary toronto new york dallas austin chicago washington denver omaha "
     "boston california texas oregon san francisco los angeles sacramento europe asia india brazil canada "
     "atlanta seattle miami phoenix las vegas orlando singapore tokyo sydney paris frankfurt oslo "
     "america usa us u.s. uk "
     "est cst pst mst edt cdt pdt gmt am pm a.m p.m "
     "order advance addition general particular fact time least most first last lieu regards attachment "
     "mind touch care charge person front favor favour response reference light terms lunch dinner "
     "breakfast once question re fw fwd subject pricing power gas ferc iso caiso nymex").split()
)
#: A place phrase ending in one of these names an event or a thing, not a place.
_EVENT_WORDS = frozenset(
    "meeting meetings call calls conference session sessions presentation party review forum summit "
    "seminar training class luncheon dinner lunch breakfast event program programme workshop retreat "
    "olympics games game festival cookoff concert show fair expo tournament homecoming "
    "agreement contract deal committee board report plan process system project desk group team "
    "policy transaction transactions market markets price prices book "
    # departments: "meet with the people in Gas Trading"
    "trading marketing legal accounting finance operations services origination regulatory management "
    "department division unit".split()
)
#: Words that make a capitalised name a restaurant (or bar/café) rather than some venue.
_EATERY_WORDS = frozenset(
    "grill grille cafe café restaurant bistro brasserie steakhouse bar pub tavern cantina kitchen "
    "diner trattoria ristorante taqueria house club lounge deli bakery brewery oyster sushi pizzeria".split()
)
_MEAL = r"(?:lunch|dinner|breakfast|brunch|drinks?|coffee|a\s+beer|beers|happy\s+hour|cocktails?)"
#: Verbs and phrases that settle a meeting place when followed by "at/in <place>".
_MEET = (
    r"(?:meet(?:ing)?(?:\s+(?:you|him|her|them|us|me|up|together))?|see\s+(?:you|ya|everyone|y'all|all\s+of\s+you)"
    r"|get\s+together|join\s+(?:us|me|them)|be\s+held|will\s+be|is\s+scheduled|are\s+scheduled"
    r"|gather|come\s+(?:by|over|to)|stop\s+by|drop\s+by|grab\s+" + _MEAL + r"|(?:have|do|go\s+(?:to|for)|get)\s+" + _MEAL
    + r"|" + _MEAL + r"(?:\s+(?:together|today|tomorrow|tonight|on\s+\w+))?)"
)

# A capitalised name: "Ninfa's", "the Brasserie", "Morton's of Chicago", "Hotel Zaza", "Cafe Annie".
_NAME_WORD = r"(?:[A-Z][\w'’&\.-]*|\d+(?:st|nd|rd|th)?)"
_NAME = (
    r"(?P<name>(?>(?-i:(?:[Tt]he\s+)?[A-Z][\w'’&\.-]*"
    + r"(?:\s+(?:of|on|de|la|del|at|&|and|in\s+the|of\s+the|on\s+the)\s+[A-Z][\w'’&\.-]*|\s+" + _NAME_WORD + r"){0,5})))"
    # "the Albuquerque region", "the Portland office": a name that is only a qualifier
    r"(?!\s+(?:region|area|market|markets|office|offices|plant|plants|facility|area's|team|group|time)\b)"
)
# Room codes: EB 32C2, EB3321, ECN 06980, ECS-06716, 3AC 1504, "conference room 30C1", "Room 4102".
_ROOM_CODE = r"(?:EB|ECN|ECS|EC|3AC|2AC|1AC|Allen\s+Center|Enron\s+(?:Building|Center\s+(?:North|South)))\s*-?\s*\d{1,2}[A-Za-z]?\d{0,3}[A-Za-z]?\d?"
_ROOM = (
    r"(?P<room>(?-i:(?:[Tt]he\s+)?(?:" + _ROOM_CODE + r"(?:\s*\((?:conf(?:erence)?\.?\s+)?room\))?"
    r"|(?:[Cc]onf(?:erence)?\.?\s+[Rr](?:oo)?m|[Rr]oom|[Bb]oard\s*[Rr]oom|[Cc]onference\s+[Cc]enter)\s*#?\s*(?:" + _ROOM_CODE + r"|\d{1,2}[A-Za-z]?\d{1,3}[A-Za-z]?(?:/\d{1,4}[A-Za-z]?)?)"
    r"|(?:the\s+)?\d{1,2}(?:st|nd|rd|th)\s+floor\s+(?:conference|board)\s*room|[Bb]oard\s*[Rr]oom)))"
)
# Offices: "my office", "your office", "Sally's office", "the Portland office" (the last is a city: not taken).
# "Larry's desk" and "my cube" are where one meets a colleague as much as an office is.
_OFFICE = r"(?P<office>(?:my|your|his|her|our)\s+(?:office|desk|cube|cubicle)|(?-i:[A-Z][a-z]+(?:\s+[A-Z][a-z]+)?'s)\s+(?:offices?|desk|cube|cubicle))"

_PREP = r"(?P<prep>at|in|to|@)"
#: "the lobby of the Enron Building": a part of a named building.
_AREA = (r"(?P<area>(?:the\s+)?(?:lobby|entrance|reception|atrium|cafeteria)\s+of\s+(?:the\s+)?"
         r"(?-i:[A-Z][\w'’&.-]*(?:\s+[A-Z][\w'’&.-]*){0,4}))")
_CUE_THEN_PLACE = re.compile(
    r"\b" + _MEET + r"\b(?P<gap>[^.!?]{0,40}?)\s+" + _PREP + r"\s+(?:" + _ROOM + r"|" + _OFFICE + r"|" + _AREA + r"|" + _NAME + r")",
    re.IGNORECASE | re.DOTALL,
)
_PREP_ROOM = re.compile(r"\b(?:at|in|to|@)\s+" + _ROOM)
_PREP_OFFICE = re.compile(r"(?:\b(?:in|to|at|by)\s+|\(\s*)" + _OFFICE, re.IGNORECASE)
#: "his office (EB2861)": the room code says which office.
_OFFICE_CODE = re.compile(r"\b(?:his|her|our|their)\s+office\s*\(\s*(?P<room>" + _ROOM_CODE + r")\s*\)", re.IGNORECASE)
#: A line that is only a room ("Conference room EB4102", "Bachelor Conference Room") or a
#: calendar entry "EB3267 - TECO Mtg.": an invitation's place.
_ROOM_LINE = re.compile(
    r"(?m)^[ \t]*(?:(?P<room>(?-i:(?:[Cc]onference|[Cc]onf\.?)\s+[Rr](?:oo)?m\.?\s+\S+|(?:[A-Z][\w']*\s+){1,3}[Cc]onference\s+[Rr]oom))[ \t]*$"
    r"|(?P<coded>" + _ROOM_CODE + r")[ \t]+-[ \t]+[^\n]*\b(?i:mtg|meeting)\b)"
)
#: What any ``_ROOM_LINE`` contains, found without its line anchors (which a sentence can move).
_ROOM_LINE_HINT = re.compile(r"\b(?:[Cc]onf(?:erence)?\.?\s+[Rr](?:oo)?m|[Mm]tg|[Mm]eeting)\b")
#: "with Kim Watson (EB4179)" in a schedule: the person's room is where the meeting is.
_WITH_CODE = re.compile(r"\bwith\s+(?-i:[A-Z][\w'.-]+(?:\s+[A-Z][\w'.-]+){0,2})\s*\(\s*(?P<room>" + _ROOM_CODE + r")\s*\)")
_MEETING_CONTEXT = re.compile(
    r"\b(?:meet|meeting|see\s+you|get\s+together|join|lunch|dinner|breakfast|coffee|drinks|come\s+by|stop\s+by|"
    r"drop\s+by|discuss|chat|talk|session|interview|presentation|held|scheduled|gather)\b",
    re.IGNORECASE,
)
_FIELD = re.compile(r"(?im)^[ \t>]*(?P<label>location|where|place|room|venue)[ \t]*:[ \t]*(?P<value>[^\n]{2,80}?)[ \t]*$")
_FIELD_JUNK = re.compile(
    r"\b(?:tbd|tba|to\s+be\s+(?:determined|announced|decided)|n/?a|none|unknown|phone|telephone|call[\s-]?in|dial[\s-]?in|"
    r"conference\s+call|teleconference|bridge|webex|video|passcode|pin|your\s+desk|my\s+desk|same|various|see\s+(?:below|above)|"
    r"https?://|www\.)\b",
    re.IGNORECASE,
)
#: Words that make a name a building or a room rather than a town ("in the Enron Building").
_PLACE_WORDS = re.compile(
    r"\b(?:room|boardroom|center|centre|building|hall|club|hotel|inn|tower|plaza|lobby|suite|floor|office|offices|"
    r"auditorium|library|cafeteria|lunchroom|lounge|house|restaurant|cafe|grill|bar|pub|park|arena|stadium|"
    r"campus|school|university|institute|union|association|church|museum|theater|theatre|gallery)\b",
    re.IGNORECASE,
)
#: A room code in a calendar field, typed in any case ("Where: eb2865").
_FIELD_ROOM_CODE = re.compile(r"\b(?:" + _ROOM_CODE + r")", re.IGNORECASE)
_TIME_LIKE = re.compile(r"^\d{1,2}(?::\d{2})?\s*(?:[ap]\.?m\.?)?$|^\d+$", re.IGNORECASE)
_PARAGRAPH = re.compile(r"\n[ \t]*\n+")


@lru_cache(maxsize=1)
def _punkt():
    # Punkt with its built-in parameters: no trained model (so nothing to download or ship).
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    return PunktSentenceTokenizer()


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence: paragraphs first (mail has lists and signatures without
    full stops), then Punkt within each."""
    spans: list[tuple[int, int]] = []
    start = 0
    for brk in [*_PARAGRAPH.finditer(text), None]:
        end = brk.start() if brk else len(text)
        block = text[start:end]
        if block.strip():
            for s, e in _punkt().span_tokenize(block):
                spans.append((start + s, start + e))
        if brk:
            start = brk.end()
    return spans


def _kind_for(name: str, context: str) -> str:
    words = {w.lower() for w in re.findall(r"[\w'’é]+", name)}
    if words & _EATERY_WORDS or re.search(r"'s$|’s$", name.strip()):
        return RESTAURANT
    if re.search(r"\b(?:lunch|dinner|breakfast|brunch|drinks?|coffee|beers?|happy\s+hour|cocktails?)\b", context, re.IGNORECASE):
        return RESTAURANT
    return VENUE


def _clean_name(name: str) -> tuple[str, int] | None:
    """The place part of a capitalised run (trailing dates, times and event words dropped),
    with how many characters were kept; None when nothing place-like remains."""
    words = name.split()
    # Cut at the first word that starts a time/date/event ("Ninfa's Tuesday", "Brasserie at 7").
    kept: list[str] = []
    for word in words:
        bare = word.lower().strip(".,;:'’").split(".")[0]  # "Feb.and" (a lost space) is "feb"
        if bare in _NOT_PLACES and kept and bare not in ("of", "on", "de", "la", "and"):
            break
        if _TIME_LIKE.match(bare) and kept:
            break
        kept.append(word)
    while kept and kept[-1].lower().strip(".,") in ("of", "on", "de", "la", "del", "at", "&", "and"):
        kept.pop()
    if not kept:
        return None
    core = [w for w in kept if w.lower() != "the"]
    if not core:
        return None
    bare_core = [w.lower().strip(".,;:'’") for w in core]
    if all(w in _NOT_PLACES or _TIME_LIKE.match(w) for w in bare_core):
        return None
    if bare_core[-1] in _EVENT_WORDS:
        return None
    if bare_core[0].rstrip("'s") in _NOT_PLACES and len(core) == 1:
        return None
    if any(w in ("meeting", "call", "conference", "party") for w in bare_core):
        return None
    if len(core) == 1 and len(bare_core[0].strip(".")) <= 3:
        return None  # "the St." of a cut-off sentence, an acronym
    text = " ".join(kept).rstrip(".,;:")
    # Keep the span length in the original (whitespace may have been a newline).
    return text, len(text)


def _normalise(place: str) -> str:
    text = " ".join(place.split()).strip(" .,;:-")
    text = text.replace("’", "'")
    text = re.sub(r"^the\s+", "the ", text, flags=re.IGNORECASE)
    m = re.match(r"^(EB|ECN|ECS|EC|3AC|2AC|1AC)\s*-?\s*(\d.*)$", text, re.IGNORECASE)
    if m:
        text = f"{m.group(1).upper()} {m.group(2).upper()}"
    return text


def _field_mentions(text: str) -> list[PlaceMention]:
    found: list[PlaceMention] = []
    for m in _FIELD.finditer(text):
        value = m.group("value").strip()
        if _FIELD_JUNK.search(value) or len(value) > 60:
            continue
        room_code = _FIELD_ROOM_CODE.search(value)
        if not re.search(r"[A-Za-z]{3}", value) and not room_code:
            continue  # no word in it: "36.6950 N, 121.3250 W", "3:00", "#4"
        first = re.split(r"[\s,]+", value.lower())[0]
        if first in _NOT_PLACES or first in ("all", "various", "multiple", "several", "any", "every"):
            continue  # "Houston, Texas", "All cities with ...": a city or a list, not a place to meet
        if re.search(r"\b(?:" + "|".join(_MONTHS.split()) + r")\b\s+\d", value, re.IGNORECASE) and not room_code:
            continue  # a date in a "Where:" column of some table
        kind = ROOM if room_code or re.search(r"\b(?:room|rm)\b", value, re.IGNORECASE) else (
            OFFICE if re.search(r"\boffice\b", value, re.IGNORECASE) else _kind_for(value, ""))
        start = m.start("value")
        found.append(PlaceMention(_normalise(value), kind, start, start + len(value), m.group(0).strip(), 0.9))
    return found


def extract_places(text: str) -> list[PlaceMention]:
    """Meeting places mentioned in ``text`` (a message's new text), in order, without repeats."""
    if not text:
        return []
    found = _field_mentions(text)
    taken = [(p.start, p.end) for p in found]

    def add(mention: PlaceMention, block: tuple[int, int] | None = None) -> None:
        """Keep ``mention`` unless an earlier one covers it; ``block`` also keeps later ones off."""
        if any(s < mention.end and mention.start < e for s, e in taken):
            return
        taken.append(block or (mention.start, mention.end))
        found.append(mention)

    # Sentence splitting is most of the cost; most mail has no candidate at all, so look first.
    if not any(p.search(text) for p in (_CUE_THEN_PLACE, _PREP_ROOM, _PREP_OFFICE, _OFFICE_CODE, _WITH_CODE, _ROOM_LINE_HINT)):
        return found
    for s_start, s_end in sentence_spans(text):
        sentence = text[s_start:s_end]
        if _FIELD.search(sentence) and len(sentence.splitlines()) == 1:
            continue
        evidence = " ".join(sentence.split())
        for pattern in (_OFFICE_CODE, _WITH_CODE, _ROOM_LINE):
            for m in pattern.finditer(sentence):
                group = "coded" if m.groupdict().get("coded") else "room"
                add(PlaceMention(_normalise(m.group(group)), ROOM, s_start + m.start(group), s_start + m.end(group), evidence, 0.85),
                    block=(s_start + m.start(), s_start + m.end()))
        for m in _CUE_THEN_PLACE.finditer(sentence):
            if m.group("room"):
                span, kind, conf = m.span("room"), ROOM, 0.9
                place = m.group("room")
            elif m.group("area"):
                span, kind, conf = m.span("area"), VENUE, 0.85
                place = m.group("area")
            elif m.group("office"):
                span, kind, conf = m.span("office"), OFFICE, 0.85
                place = m.group("office")
            else:
                name = m.group("name")
                if not name[0].isupper() and not name.lower().startswith("the "):
                    continue
                if name.lower().startswith("the ") and not name[4:5].isupper():
                    continue
                cleaned = _clean_name(name)
                if cleaned is None:
                    continue
                place, length = cleaned
                start = m.start("name")
                span = (start, start + length)
                kind = _kind_for(place, m.group(0))
                # A name after "in" is mostly a city or a region ("meet in Mexico City") unless it
                # says it is a building; a single word after "at" is as often a company. Both are
                # kept, but below the confidence suggestions need.
                named_place = bool(_PLACE_WORDS.search(place))
                if m.group("prep").lower() == "in":
                    conf = 0.85 if named_place or kind == RESTAURANT and _EATERY_WORDS & {w.lower() for w in place.split()} else 0.6
                else:
                    conf = 0.85 if kind == RESTAURANT or named_place or len(place.split()) > 1 else 0.6
            add(PlaceMention(_normalise(place), kind, s_start + span[0], s_start + span[1], evidence, conf))
        for m in _PREP_ROOM.finditer(sentence):
            conf = 0.9 if _MEETING_CONTEXT.search(sentence) else 0.6
            add(PlaceMention(_normalise(m.group("room")), ROOM, s_start + m.start("room"), s_start + m.end("room"),
                             evidence, conf))
        for m in _PREP_OFFICE.finditer(sentence):
            if not _MEETING_CONTEXT.search(sentence):
                continue
            add(PlaceMention(_normalise(m.group("office")), OFFICE, s_start + m.start("office"), s_start + m.end("office"),
                             evidence, 0.85))
    return sorted(found, key=lambda p: p.start)
