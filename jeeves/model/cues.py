"""Rule-shaped features from the labelling definition, and the situations a bag of words confuses.

The label (LABELING.md) is a conjunction read from the sender's *new* text: a face-to-face
get-together, in the future, requested rather than announced, with no place settled. Bag-of-
words features see the words but not how they combine, so :class:`CueFeatures` scores each
sentence for those rules (meeting word + request, meeting word + future time, place named,
call only, past tense) and keeps the strongest sentence. :class:`ContextCues` marks the
false-alarm classes seen on real inboxes (calendar notices, standing meetings, calls,
newsletters, bare forwards); :class:`MetaFeatures` the shape of the email.
"""

from __future__ import annotations

import math
import re

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin

from jeeves.model.text_fields import MAX_CHARS, TEXT_FIELDS, new_text_of, quoted_text_of


# --- engineered cues ----------------------------------------------------------------------

_W = lambda *words: r"\b(?:" + "|".join(words) + r")\b"  # noqa: E731

CUES: dict[str, re.Pattern] = {name: re.compile(rx, re.IGNORECASE) for name, rx in {
    # face-to-face get-togethers
    "meet_verb": _W(r"meet(?:ing)?\s+(?:with|up|you|me|us|him|her|them)", r"get together", r"sit down",
                    r"stop by", r"drop by", r"come by", r"swing by", r"catch up", r"visit", r"see you",
                    r"meet", r"get with", r"hook up", r"talk in person", r"face to face", r"in person"),
    "meet_noun": _W(r"meetings?", r"mtg", r"lunch", r"coffee", r"drinks?", r"dinner", r"breakfast", r"beers?",
                    r"happy hour", r"appointment", r"appt", r"get-together", r"sit-down", r"visit"),
    "meal": _W(r"lunch", r"coffee", r"drinks?", r"dinner", r"breakfast", r"beers?", r"happy hour"),
    "schedule_req": _W(r"set up", r"setup", r"schedule", r"arrange", r"(?:\d+|thirty|fifteen|few) minutes with",
                       r"time with", r"time to (?:meet|talk|discuss|get together)", r"on (?:his|her|my|your) calendar"),
    # request vs announcement
    "request": _W(r"can we", r"could we", r"can you", r"could you", r"would you", r"will you", r"shall we",
                  r"let'?s", r"let us", r"do you want", r"would you like", r"are you (?:free|available|around)",
                  r"is there a (?:good )?time", r"when (?:is|are|would|can|could)", r"what time", r"how about",
                  r"how does", r"does .{1,30} work", r"works? for you", r"free (?:for|on|next|this|to)",
                  r"available (?:for|on|next|this|to)", r"i(?:'d| would) like to", r"want to", r"wanna",
                  r"please (?:set|schedule|arrange|find)", r"i need (?:about )?\S+ minutes", r"love to",
                  r"we should", r"we need to", r"need to (?:meet|get together|sit down)", r"try to"),
    "announce": _W(r"please plan to attend", r"you are invited", r"cordially", r"will be held", r"agenda",
                   r"registration", r"register", r"rsvp", r"seminar", r"conference", r"workshop",
                   r"newsletter", r"unsubscribe", r"click here", r"http", r"www", r"announce\w*",
                   r"all employees", r"speaker"),
    # when
    "weekday": _W(r"mon(?:day)?", r"tue(?:s|sday)?", r"wed(?:nesday)?", r"thu(?:rs|rsday)?", r"fri(?:day)?",
                  r"sat(?:urday)?", r"sun(?:day)?"),
    "future": _W(r"tomorrow", r"tmrw", r"tonight", r"next week", r"this week", r"next month", r"sometime",
                 r"some time", r"soon", r"later (?:today|this week)", r"this (?:morning|afternoon|evening)",
                 r"when you (?:get|are) back", r"when you have", r"early next", r"later", r"upcoming",
                 r"in the next", r"while (?:i'?m|you'?re) (?:in|here|there)", r"i(?:'ll| will) be in"),
    "clock": r"\b\d{1,2}(?::\d{2})?\s?(?:[ap]\.?m\.?)\b|\b\d{1,2}:\d{2}\b|\bnoon\b",
    "date": r"\b\d{1,2}/\d{1,2}\b|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?\s+\d{1,2}\b",
    "past": _W(r"yesterday", r"last (?:week|night|month|friday|monday|tuesday|wednesday|thursday)",
               r"met", r"had (?:a|our|the) (?:meeting|lunch|dinner|call)", r"was held", r"thanks? for (?:meeting|lunch|dinner|the)",
               r"enjoyed", r"minutes of", r"recap", r"followup to", r"follow up to", r"as discussed"),
    # where
    "place_named": r"\b(?:EB|ECS|ECN|3AC|AC)\s?-?\d{2,4}\w?\b|\b\d{2}[a-z]\d\b|\bconference room\b|\broom\s+\w*\d|"
                   r"\b(?:floor|suite)\b|\b\d{2,5}\s+\w+(?:\s\w+)?\s(?:street|st|avenue|ave|blvd|road|rd|drive|dr)\b|"
                   r"\b(?:restaurant|hotel|cafe|café|grill|bar|club|lobby|cafeteria|hyatt|hilton|marriott|ninfa'?s|"
                   r"starbucks|pub|tavern|bistro|steakhouse|location\s*:|where\s*:|venue)\b|\bat\s+[A-Z][a-z]+'s\b",
    "my_office": _W(r"my office", r"my desk", r"your office", r"your desk", r"his office", r"her office",
                    r"come see me", r"come by my", r"stop by my", r"in my office", r"our office", r"conference room"),
    "where_open": _W(r"where", r"place tbd", r"location tbd", r"to be determined", r"tbd", r"your call",
                     r"somewhere", r"pick a", r"room to follow", r"book a room", r"find a room", r"reserve a room",
                     r"a place", r"location"),
    # calls only
    "call": _W(r"call", r"phone", r"conference call", r"dial", r"dial-in", r"call-in", r"passcode", r"pass code",
               r"participant code", r"bridge", r"telephone", r"video", r"ring me", r"voicemail"),
    "phone_number": r"\b\(?\d{3}\)?[-. ]\d{3}[-. ]\d{4}\b|\b\d-\d{4}\b",
    "thanks_confirm": _W(r"sounds good", r"see you then", r"that works", r"works for me", r"i'll be there",
                         r"see you there", r"confirmed", r"will do", r"great"),
}.items()}

# Case-sensitive: "at Ninfa's", "in front of Beck's Prime", "meet at the Ale House".
CUES["place_proper"] = re.compile(
    r"\b(?:at|in front of|meet(?: you)? at|over at)\s+(?:the\s+)?"
    r"(?!(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|Enron|I|ECT|EB|Houston|London|Portland)\b)"
    r"[A-Z][\w'&]+(?:\s+[A-Z][\w'&]+)*"
    r"|\b(?:my|your|his|her|our) (?:house|place|apartment|home)\b"
)

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n\s*\n|\n(?=[A-Z-•*])")


def _sentences(text: str) -> list[str]:
    return [s for s in (p.strip() for p in _SENTENCE.split(text)) if s]


class CueFeatures(BaseEstimator, TransformerMixin):
    """Rule-shaped, non-negative features from the labelling definition.

    Counts over the whole new text, plus sentence-level conjunctions (the strongest sentence
    wins), because "lunch" and "tomorrow" in one sentence means more than in one email.
    """

    _PAIRS = (
        ("meet", "request"), ("meet", "future"), ("meet", "when"), ("meet", "question"),
        ("meal", "request"), ("meet", "place_named"), ("meet", "my_office"), ("meet", "call"),
        ("meet", "past"), ("meet", "where_open"), ("schedule_req", "meet"), ("schedule_req", "future"),
        ("request", "future"), ("request", "question"), ("meet", "announce"), ("meet", "place_proper"),
        ("when", "question"), ("where_open", "question"),
    )

    def __init__(self, field: str = "new_text", max_chars: int = MAX_CHARS, count_sentences: bool = True):
        self.field = field
        self.max_chars = max_chars
        self.count_sentences = count_sentences

    def fit(self, documents, y=None):
        names = [f"cue:{k}" for k in CUES] + ["cue:question", "cue:when"]
        names += [f"pair:{a}+{b}" for a, b in self._PAIRS]
        names += ["pair:meet+request+future", "pair:meet+request+noplace", "pair:meet+future+noplace+nocall",
                  "first:meet+request"] + (["n_sentences_log"] if self.count_sentences else [])
        self.feature_names_ = np.array(names, dtype=object)
        return self

    def _sentence_flags(self, sentence: str, present: list[tuple[str, re.Pattern]] | None = None) -> dict[str, bool]:
        # Only cues found somewhere in the whole text can match one of its sentences, so the
        # others are not searched again per sentence (the cue steps were 70% of scoring time).
        flags = dict.fromkeys(CUES, False)
        for k, rx in (present if present is not None else CUES.items()):
            flags[k] = bool(rx.search(sentence))
        flags["question"] = "?" in sentence
        flags["when"] = flags["weekday"] or flags["future"] or flags["clock"] or flags["date"]
        flags["meet"] = flags["meet_verb"] or flags["meet_noun"] or flags["schedule_req"]
        flags["future"] = flags["future"] or flags["weekday"]
        return flags

    def _row(self, text: str) -> list[float]:
        found = {k: len(rx.findall(text)) for k, rx in CUES.items()}
        counts = [math.log1p(n) for n in found.values()] + [math.log1p(text.count("?"))]
        present = [(k, CUES[k]) for k, n in found.items() if n]
        sentences = _sentences(text)[:60]
        flags = [self._sentence_flags(s, present) for s in sentences]
        counts.append(float(any(f["when"] for f in flags)))
        pairs = [float(any(f[a] and f[b] for f in flags)) for a, b in self._PAIRS]
        doc_place = any(f["place_named"] or f["my_office"] or f["place_proper"] for f in flags)
        doc_call = any(f["call"] for f in flags)
        pairs.append(float(any(f["meet"] and f["request"] and (f["future"] or f["when"]) for f in flags)))
        pairs.append(float(any(f["meet"] and f["request"] for f in flags) and not doc_place))
        pairs.append(float(any(f["meet"] and f["when"] for f in flags) and not doc_place and not doc_call))
        pairs.append(float(bool(flags[:3]) and any(f["meet"] and f["request"] for f in flags[:3])))
        if self.count_sentences:
            pairs.append(math.log1p(len(sentences)))
        return counts + pairs

    def transform(self, documents):
        get = TEXT_FIELDS[self.field]
        rows = [self._row(get(d, self.max_chars)) for d in documents]
        return sp.csr_matrix(np.asarray(rows, dtype=np.float32).reshape(len(rows), -1))

    def get_feature_names_out(self, input_features=None):
        return self.feature_names_


class MetaFeatures(BaseEstimator, TransformerMixin):
    """Shape of the email: reply/forward, recipients, how much is new vs. quoted, length."""

    def fit(self, documents, y=None):
        self.feature_names_ = np.array(["meta:is_reply", "meta:is_forward", "meta:n_recipients_log",
                                        "meta:many_recipients", "meta:new_len_log", "meta:quoted_len_log",
                                        "meta:new_empty", "meta:short_new", "meta:subject_question",
                                        "meta:subject_meet"], dtype=object)
        return self

    def transform(self, documents):
        meet = CUES["meet_noun"]
        rows = []
        for d in documents:
            new, quoted, subject = new_text_of(d), quoted_text_of(d), d.subject or ""
            rows.append([float(d.is_reply), float(d.is_forward), math.log1p(d.n_recipients),
                         float(d.n_recipients > 10), math.log1p(len(new)) / 10, math.log1p(len(quoted)) / 10,
                         float(len(new.strip()) < 5), float(len(new) < 400), float("?" in subject),
                         float(bool(meet.search(subject) or CUES["meet_verb"].search(subject)))])
        return sp.csr_matrix(np.asarray(rows, dtype=np.float32).reshape(len(rows), -1))

    def get_feature_names_out(self, input_features=None):
        return self.feature_names_


# --- the situation around a meeting word ---------------------------------------------------------

_R = lambda rx, flags=re.IGNORECASE: re.compile(rx, flags)  # noqa: E731

#: A face-to-face word, and the second person: "lunch" with "you/we/let's" in one sentence is an
#: invitation; without them it is usually someone else's meeting or a report of one.
_MEET_WORD = _R(r"\b(?:meet(?:ing)?s?|get together|sit down|stop by|drop by|come by|catch up|lunch|coffee|drinks?|"
                r"dinner|breakfast|beers?|happy hour|visit|appointment|mtg|get-together|sit-down)\b")
_SECOND_PERSON = _R(r"\b(?:you|your|we|us|let'?s|our|ya)\b")

#: Each the mark of one false-alarm class seen on real inboxes (docs/classifier-report.md).
CONTEXT_CUES: dict[str, re.Pattern] = {
    # "set up the book / an account / a deal" is not "set up a meeting"
    "setup_object": _R(
        r"\b(?:set ?up|setup|create|creating|established?|open(?:ed)?)\s+(?:(?:a|an|the|new|this|that|his|her|their|"
        r"your|my|our|these|those|two|some)\s+){0,2}(?:books?|accounts?|deals?|trades?|counterpart(?:y|ies)|reports?|"
        r"files?|passwords?|ids?|user ?ids?|access|profiles?|systems?|database|spreadsheets?|links?|folders?|"
        r"director(?:y|ies)|printers?|phones?|voice ?mail|positions?|curves?|portfolios?|contracts?|master|isda|gty|"
        r"guarant(?:y|ee)s?|credit|wires?|payments?|invoices?|transport|meters?|capacity|servers?|e-?mail|"
        r"distribution lists?|log ?ins?|log ?ons?|entit(?:y|ies)|companies|company|vendors?|codes?|templates?|"
        r"pricing|schedules?)\b"),
    "setup_meeting": _R(
        r"\b(?:set ?up|setup|schedule|arrange|organi[sz]e|book|coordinate|plan)\s+(?:(?:a|an|the|some|our|my|"
        r"another|brief|short|quick|time for a|time for)\s+){0,2}(?:meeting|time|lunch|dinner|conference|appointment|"
        r"get together|session|interview|visit|coffee|breakfast|sit down|meet)\b"),
    # calendar notices: "When:" / "Where: EB 32C2" field lines, "Invitation:" / "Accepted:" subjects
    "calendar_field": _R(r"^\s*(?:when|where|location|date|time|chairperson|invitees|required attendees|"
                         r"optional attendees|duration|room)\s*:", re.IGNORECASE | re.MULTILINE),
    "location_value": _R(r"^\s*(?:where|location|room|place|venue)\s*:\s*(?!\s*(?:tbd|tba|to be determined|n/?a)\b)\S",
                         re.IGNORECASE | re.MULTILINE),
    "calendar_subject": _R(r"^\s*(?:invitation|accepted|declined|tentative|updated|cancell?ed|reminder|"
                           r"meeting request|calendar entry|new meeting)\b"),
    # routine and standing meetings: everyone knows the place
    "recurring": _R(r"\b(?:every (?:other )?(?:mon|tues|wednes|thurs|fri|satur|sun)day|every week|weekly|bi-?weekly|"
                    r"monthly|recurring|standing meeting|regular(?:ly)? scheduled|regular (?:staff |weekly )?meeting|"
                    r"usual (?:time|place|spot)|staff meeting|each week|series)\b"),
    # meetings in the past, thank-you notes, recaps
    "past": _R(r"\b(?:met with|we met|i met|had (?:a|our|the) (?:good |great |nice )?(?:meeting|lunch|dinner|breakfast|"
               r"call|talk|chat)|had lunch|had dinner|was great|went to|attended|enjoyed|thanks? (?:again )?for "
               r"(?:meeting|lunch|dinner|breakfast|coming|the|your time|taking)|thank you (?:again )?for|(?:nice|good|"
               r"great) (?:to see|seeing|meeting|talking|to meet)|last (?:week|night|month|time)|yesterday|"
               r"earlier today|this morning'?s meeting|was held|were held|minutes from|recap)\b"),
    # "let me check", "I'd love to", "see you then": answers that do not ask
    "reply_accept": _R(r"\b(?:let me check|i'?ll check|i will check|check my calendar|i would love to|i'?d love to|"
                       r"count me in|sounds (?:good|great|fun|like a plan)|i'?m in\b|i can make it|can'?t make it|"
                       r"cannot make it|see you (?:there|then|tomorrow|tonight|soon)|works for me|that works|"
                       r"i'?ll be there|i will be there|i'?m available|i am available|look(?:ing)? forward to "
                       r"(?:seeing|meeting)|confirm(?:ed|ing)?)\b"),
    # calls: "let's discuss", "talk with her on the phone"
    "call_words": _R(r"\b(?:on the phone|by phone|over the phone|phone call|conference call|call me|give me a call|"
                     r"give (?:him|her|them|me|us) a call|call (?:you|him|her|them)|dial(?:-| )?in|talk (?:to|with) "
                     r"(?:you|him|her|them)|let'?s (?:talk|discuss)|to discuss|discuss|teleconference|call-in|bridge|"
                     r"passcode)\b"),
    "inperson_words": _R(r"\b(?:in person|face to face|face-to-face|sit down|get together|stop by|come by|drop by|"
                         r"swing by|lunch|coffee|drinks?|dinner|breakfast|beers?|happy hour|visit|meet (?:you|with you|"
                         r"up)|catch up)\b"),
    # newsletters and announcements that give the venue
    "bulk": _R(r"\b(?:unsubscribe|newsletter|to be removed|mailing list|this e-?mail was sent|click here|view (?:it |"
               r"this )?online|privacy policy|copyright|all rights reserved|register|registration|early bird|webcast|"
               r"webinar|sponsor(?:ed|s)?|keynote|exhibit|tickets?|admission|rsvp|cordially|you are invited|we are "
               r"(?:pleased|delighted) to|join us|featuring|speakers?|agenda|http|www\.)\b"),
    # forwards with a one-line FYI
    "fyi": _R(r"\b(?:fyi|for your (?:information|review|files|records)|see (?:below|attached)|attached (?:is|are)|"
              r"please see|here is|here are|per our conversation|as requested)\b"),
    "question_when": _R(r"\b(?:when (?:are|is|would|can|could|will|do)|what time|which day|what day|are you (?:free|"
                        r"available|around)|is there a (?:good )?time|does .{1,30} work|how about|how does .{1,30} "
                        r"(?:sound|look))\b"),
    "question_where": _R(r"\b(?:where (?:should|do|would|shall|can|could|to)|any (?:suggestions|ideas) (?:on|for) "
                         r"(?:where|a place)|pick a (?:place|spot|restaurant|bar)|your call|place tbd|location tbd|"
                         r"to be determined|room to follow|book a room|find a room|reserve a room|somewhere)\b"),
}
_URL = re.compile(r"https?://|www\.", re.IGNORECASE)


class ContextCues(BaseEstimator, TransformerMixin):
    """Who meets, when, and whether anything is asked: the classes a bag of words confuses.

    Calendar notices that state a room, standing meetings, meetings in the past or between
    other people, replies that only accept, calls, newsletters, and forwards that add nothing
    all carry meeting words; these features mark each situation instead (new text and subject).
    An empty new text is marked only together with what it forwards, so it cannot by itself
    look like a request.
    """

    _DERIVED = ("meet_2nd_sent", "meet_no2nd_sent", "meet_sents", "new_empty_fwd", "short_fwd", "no_recipients",
                "many_recipients", "quoted_meet_new_short", "setup_obj_not_meeting", "calendar_and_location",
                "call_not_inperson", "past_meet_sent", "urls_log", "new_chars_log")

    def fit(self, documents, y=None):
        self.feature_names_ = np.array([f"ctx:{name}" for name in (*CONTEXT_CUES, *self._DERIVED)], dtype=object)
        return self

    def _row(self, document) -> list[float]:
        new, subject = new_text_of(document), document.subject or ""
        text = subject + "\n" + new
        found = {name: len(rx.findall(subject if name == "calendar_subject" else text))
                 for name, rx in CONTEXT_CUES.items()}
        row = [math.log1p(n) for n in found.values()]
        with_you = without_you = past = 0
        for sentence in _sentences(new)[:60]:
            if _MEET_WORD.search(sentence):
                if _SECOND_PERSON.search(sentence):
                    with_you += 1
                else:
                    without_you += 1
                past += bool(CONTEXT_CUES["past"].search(sentence))
        empty = len(new.strip()) < 5
        quoted = quoted_text_of(document)
        row += [
            float(with_you > 0), float(without_you > 0 and with_you == 0), math.log1p(with_you + without_you),
            float(empty and (document.is_forward or bool(quoted.strip()))),
            float(document.is_forward and len(new.strip()) < 200),
            float(document.n_recipients == 0), float(document.n_recipients > 5),
            float(bool(_MEET_WORD.search(quoted)) and len(new.strip()) < 200),
            float(bool(found["setup_object"]) and not found["setup_meeting"]),
            float(bool(CONTEXT_CUES["calendar_field"].search(new)) and bool(CONTEXT_CUES["location_value"].search(new))),
            float(bool(found["call_words"]) and not found["inperson_words"]),
            float(past > 0), math.log1p(len(_URL.findall(new))), math.log1p(len(new)) / 10,
        ]
        return row

    def transform(self, documents):
        rows = [self._row(d) for d in documents]
        return sp.csr_matrix(np.asarray(rows, dtype=np.float32).reshape(len(rows), -1))

    def get_feature_names_out(self, input_features=None):
        return self.feature_names_
