"""What a person with an ordinary inbox would get from a model, and the thresholds chosen for it.

An enriched corpus (10 % requests) flatters a model: a threshold tuned there fires on a fifth of
a real inbox, where under 4 % of mail is a request. So every figure a user is shown comes from
mail that, weighted, stands for an inbox:

- the ``random`` pool of a corpus (drawn uniformly: each message weighs 1);
- an active-learning draw (pool ``active``): a stratified sample of an unlabelled pool, each
  row weighing its stratum's ``weight`` (pool size over draw size).

Each such *sample* is its own estimate of the same inbox; they are pooled by giving each the
same total weight, so no draw's size decides the answer. Scores must be out-of-fold
(cross-validated) for the estimate to be honest.

Two thresholds turn a score into an action. At or above ``text`` Jeeves is sure enough to
interrupt the person with a text; between ``digest`` and ``text`` the message is listed in the
daily digest instead. The text threshold is chosen for the inbox — an alert budget (share of
mail texted) and a precision floor — at one of three named trade-offs the user picks in the
config; the digest threshold catches most of the clear requests the texts miss. This module
says what a pair of thresholds gives; ``jeeves.model.selection`` chooses them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np


@dataclass(frozen=True)
class TradeOff:
    """How many texts a person accepts, and how many of them must be right."""

    name: str
    #: Largest share of all mail that may be texted (the alert budget).
    budget: float
    #: Smallest share of texts that must be requests (the precision floor).
    precision_floor: float
    description: str


#: The choices offered in the config (``[notify] trade_off``), fewest texts first.
TRADE_OFFS: dict[str, TradeOff] = {t.name: t for t in (
    TradeOff("fewer-texts", 0.02, 0.60, "only the surest requests are texted; the rest wait for the digest"),
    TradeOff("balanced", 0.04, 0.45, "the default: about one text in 25 messages, most clear requests texted"),
    TradeOff("fewer-misses", 0.08, 0.30, "more requests texted at once, at the price of more wrong texts"),
)}
DEFAULT_TRADE_OFF = "balanced"
#: Largest share of mail the digest may list (one glance a day at an ordinary inbox's volume).
DIGEST_BUDGET = 0.06
#: Share of clear requests the texts and the digest together should reach.
DIGEST_TARGET_RECALL_HIGH = 0.98


@dataclass(frozen=True)
class InboxSample:
    """Labelled messages that, weighted, stand for one inbox."""

    name: str
    mask: np.ndarray  # which rows of the labelled set belong to the sample
    weight: np.ndarray  # each row's weight (0 outside the sample)


def inbox_samples(pool: Sequence[str], weight: Sequence[float], source: Sequence[str]) -> list[InboxSample]:
    """The samples found in a labelled set: each source's random pool, and each active draw.

    ``pool`` is the labels.csv ``pool`` column (``random``, ``cue``, ``active``, …), ``weight``
    its ``weight`` column (1 where absent), ``source`` the corpus each row came from.
    """
    pool, weight, source = np.asarray(pool), np.asarray(weight, dtype=float), np.asarray(source)
    samples = []
    random_mask = pool == "random"
    if random_mask.any():
        samples.append(InboxSample("random", random_mask, np.where(random_mask, 1.0, 0.0)))
    for name in sorted(set(source[pool == "active"].tolist())):
        mask = (pool == "active") & (source == name)
        samples.append(InboxSample(name, mask, np.where(mask, weight, 0.0)))
    return samples


@dataclass
class InboxEstimate:
    """Shares of an ordinary inbox's mail (``texted``, ``digest``) and of requests (recalls)."""

    text_threshold: float
    digest_threshold: float | None
    #: Share of all mail that is texted.
    texted: float
    #: Share of texts that are requests.
    precision: float
    #: Share of requests that are texted.
    recall: float
    #: Share of clear (``high``-confidence) requests that are texted.
    recall_high: float
    #: Share of texts that are plainly wrong: a ``high``-confidence "no request".
    wrong: float
    #: Share of all mail listed in the digest (below the text threshold, above the digest's).
    digest: float = 0.0
    #: Share of digest entries that are requests.
    digest_precision: float = 0.0
    #: Requests (all / clear) that are texted or listed in the digest.
    recall_with_digest: float = 0.0
    recall_high_with_digest: float = 0.0
    #: Share of requests in the inbox, as the samples estimate it.
    request_share: float = 0.0
    samples: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    def summary(self) -> str:
        line = (f"texts {self.texted:.1%} of mail, precision {self.precision:.2f}, recall {self.recall:.2f} "
                f"(clear requests {self.recall_high:.2f}), plainly wrong {self.wrong:.0%} of texts")
        if self.digest_threshold is not None:
            line += (f"; digest lists {self.digest:.1%} of mail (precision {self.digest_precision:.2f}), texts + "
                     f"digest reach {self.recall_high_with_digest:.2f} of clear requests")
        return line


def _sums(labels, high, scores, weight, text_threshold, digest_threshold) -> np.ndarray:
    w = weight / weight.sum()
    pos, texted = labels == 1, scores >= text_threshold
    listed = (scores >= digest_threshold) & ~texted if digest_threshold is not None else np.zeros_like(texted)
    either = texted | listed
    return np.array([
        (w * texted).sum(), (w * (texted & pos)).sum(), (w * pos).sum(), (w * (pos & high)).sum(),
        (w * (texted & pos & high)).sum(), (w * (texted & ~pos & high)).sum(),
        (w * listed).sum(), (w * (listed & pos)).sum(), (w * (either & pos)).sum(), (w * (either & pos & high)).sum(),
    ])


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b > 0 else 0.0


def _figures(v: np.ndarray) -> dict[str, float]:
    texted, tp, pos, pos_high, tp_high, wrong, listed, listed_pos, either_pos, either_pos_high = v
    return {"texted": float(texted), "precision": _ratio(tp, texted), "recall": _ratio(tp, pos),
            "recall_high": _ratio(tp_high, pos_high), "wrong": _ratio(wrong, texted), "digest": float(listed),
            "digest_precision": _ratio(listed_pos, listed), "recall_with_digest": _ratio(either_pos, pos),
            "recall_high_with_digest": _ratio(either_pos_high, pos_high), "request_share": float(pos)}


def estimate(labels, confidence, scores, samples: Sequence[InboxSample], text_threshold: float,
             digest_threshold: float | None = None) -> InboxEstimate:
    """The inbox figures at these thresholds, pooled over ``samples`` (each weighing the same)."""
    if not samples:
        raise ValueError("an inbox estimate needs a random pool or an active-learning draw")
    labels, scores = np.asarray(labels, dtype=int), np.asarray(scores, dtype=float)
    high = np.asarray(confidence) == "high"
    per = {s.name: _sums(labels[s.mask], high[s.mask], scores[s.mask], s.weight[s.mask], text_threshold,
                         digest_threshold) for s in samples}
    pooled = _figures(np.mean(list(per.values()), axis=0))
    return InboxEstimate(text_threshold=float(text_threshold), digest_threshold=digest_threshold, **pooled,
                         samples={name: {k: round(v, 4) for k, v in _figures(v).items()} for name, v in per.items()})
