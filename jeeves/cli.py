"""The ``jeeves`` command: argument parsing and printing only; the work is in the library."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Sequence

from jeeves import __version__
from jeeves.errors import JeevesError

log = logging.getLogger("jeeves")


def _default_corpora():
    """The shipped labels (``jeeves.model.corpus.DEFAULT_CORPORA``), imported only by commands that train."""
    from jeeves.model.corpus import DEFAULT_CORPORA

    return DEFAULT_CORPORA


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jeeves", description="Texts you when someone wants to meet and no place is set.")
    parser.add_argument("--version", action="version", version=f"jeeves {__version__}")
    parser.add_argument("-c", "--config", help="TOML config file (default: $JEEVES_CONFIG)")
    parser.add_argument("--log-format", choices=["text", "json"], help="log line format (default: config, else text)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="watch mail and send alerts (the daemon)")
    p.add_argument("--once", action="store_true", help="one ingest → classify → notify pass, then exit")
    p.add_argument("--dry-run", action="store_true", help="do everything but send")

    p = sub.add_parser("import", help="store an mbox file or maildir (not texted unless --notify)")
    p.add_argument("path")
    p.add_argument("--notify", action="store_true", help="text positives found in it too")

    p = sub.add_parser("train", help="fit and compare models; persist the winner")
    p.add_argument("--corpus", type=Path, action="append", help="labelled corpus dir (messages.mbox + labels.csv); "
                   "repeat for several (default: the shipped corpus and its two active-learning draws)")
    p.add_argument("--out", type=Path, help="models directory (default: model.dir from config)")
    p.add_argument("--target-recall", type=float, help="recall the threshold must reach (default: config)")
    p.add_argument("--quick", action="store_true", help="a small grid, for a fast check")

    p = sub.add_parser("evaluate", help="score a model on a labelled corpus, and what an ordinary inbox would get")
    p.add_argument("--corpus", type=Path, action="append", help="labelled corpus dir; repeat for several "
                   "(default: the shipped corpora)")
    p.add_argument("--model", type=Path, help="model file or directory (default: the serving model)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", type=Path, help="write plots and report.md here")

    p = sub.add_parser("classify", help="score one .eml file")
    p.add_argument("file", type=Path)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("explain", help="why a message scored as it did")
    p.add_argument("message", help="stored message id, Message-ID, or .eml path")

    p = sub.add_parser("label", help="tell Jeeves whether a message needs a place (1) or not (0)")
    p.add_argument("message", nargs="?", help="stored message id (as in the SMS, e.g. 123) or Message-ID")
    p.add_argument("value", nargs="?", type=int, choices=[0, 1])
    p.add_argument("--review", action="store_true", help="label the least certain stored messages one by one")
    p.add_argument("--limit", type=int, default=20, help="how many to review")

    sub.add_parser("replies", help="read the replies to Jeeves's texts once and apply them (the daemon does this every minute)")

    p = sub.add_parser("status", help="accounts, counts, model and outbox")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("models", help="list trained models; --use VERSION promotes or rolls back")
    p.add_argument("--use", metavar="VERSION", help="serve this model from now on")

    p = sub.add_parser("retrain", help="train a challenger on all labels; promote it if no worse than the serving model")
    p.add_argument("--corpus", type=Path, action="append", help="labelled corpus dir; repeat for several "
                   "(default: the shipped corpora)")
    p.add_argument("--quick", action="store_true", help="a small grid, for a fast check")

    sub.add_parser("health", help="exit 0 when the database and model are usable, 1 otherwise")

    p = sub.add_parser("web", help="a local page to review alerts and label them (prints its address with a token)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port (default: 8765; 0 picks a free one)")
    p = sub.add_parser("places", help="where you met each correspondent, learned from stored mail (used in alerts)")
    p.add_argument("correspondent", nargs="?", help="one address (default: everyone)")
    p.add_argument("--json", action="store_true")

    sub.add_parser("demo", help="one pass over the shipped sample mailbox (its own database, console alerts), "
                                "then which alerts were the planted requests")
    return parser


#: Exit status of a command that failed with a ``JeevesError`` (bad input, unreachable server …).
EXIT_ERROR = 2
#: Exit status of a command that failed with anything else: a bug.
EXIT_BUG = 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. A ``JeevesError`` becomes its own message on stderr (exit 2); any other
    exception becomes one line naming it (exit 1), its traceback logged at DEBUG, so it shows
    with ``--verbose`` or ``log_level = "DEBUG"`` and, with JSON logs, at ERROR in the
    record's ``error`` field (a log collector keeps it; a terminal is not flooded)."""
    args = build_parser().parse_args(argv)
    from jeeves.config import load_settings
    from jeeves.logs import configure_logging

    log_format = args.log_format or "text"
    configure_logging("DEBUG" if args.verbose else "INFO", log_format)  # until the settings say otherwise
    try:
        settings = load_settings(args.config)
        log_format = args.log_format or settings.daemon.log_format
        configure_logging("DEBUG" if args.verbose else settings.daemon.log_level, log_format)
        return COMMANDS[args.command](settings, args)
    except JeevesError as exc:
        print(f"jeeves: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug: one line for the user, the traceback for the log
        first_line = (str(exc).strip().splitlines() or [""])[0]
        level = logging.ERROR if log_format == "json" else logging.DEBUG
        print(f"jeeves: unexpected error in `{args.command}`: {type(exc).__name__}"
              + (f": {first_line}" if first_line else "")
              + ("" if log.isEnabledFor(level) else " (a bug; run again with --verbose for the traceback)"),
              file=sys.stderr)
        log.log(level, "unexpected error in %s", args.command, exc_info=True)
        return EXIT_BUG


def _app(settings):
    from jeeves.service import Jeeves

    return Jeeves(settings)


def cmd_run(settings, args) -> int:
    if args.once:
        app = _app(settings)
        report = app.run_once(dry_run=args.dry_run)
        n = report.notify
        for outbox_id, body in getattr(n, "previews", []):
            print(f"[dry run, not sent] {body}")
        print(
            f"stored {report.stored} new, classified {report.classify.classified} "
            f"({report.classify.positives} positive, {report.classify.queued} alerts queued, "
            f"{report.classify.unsure} for the digest); "
            f"sent {getattr(n, 'sent', 0)}, held {getattr(n, 'held', 0)}, suppressed {getattr(n, 'suppressed', 0)}, "
            f"failed {getattr(n, 'failed', 0)}"
            + (f"; dry run: {n.dry_run} would be sent, all left for a real run" if getattr(n, "dry_run", 0) else ""),
            file=sys.stderr,
        )
        return 1 if report.errors else 0
    from jeeves.daemon import run_daemon

    return run_daemon(settings, dry_run=args.dry_run)


def cmd_import(settings, args) -> int:
    report = _app(settings).import_path(args.path, notify=args.notify, progress=sys.stderr.isatty())
    print(f"read {report.fetched} messages, {report.stored} new")
    return 0


def cmd_train(settings, args) -> int:
    from jeeves.model.registry import set_current
    from jeeves.model.training import train_corpus

    out = args.out or settings.model.dir
    trained = train_corpus(
        args.corpus or _default_corpora(), out, target_recall=args.target_recall or settings.model.target_recall, progress=True, quick=args.quick
    )
    set_current(out, trained.version)
    print(f"model {trained.version} saved in {out} and made current")
    return 0


def cmd_evaluate(settings, args) -> int:
    from jeeves.model.evaluation import evaluate_corpus
    from jeeves.model.serving import load_model

    model = (load_model(args.model, models_dir=settings.model.dir, trade_off=settings.notify.trade_off) if args.model
             else _app(settings).model)
    report = evaluate_corpus(model, args.corpus or _default_corpora(), out_dir=args.out)
    if args.json:
        print(json.dumps(report.as_dict(), default=float))
    else:
        print(report.to_text())
    return 0


def cmd_classify(settings, args) -> int:
    parsed, score, decision = _app(settings).classify_file(args.file)
    if args.json:
        print(json.dumps({"message_id": parsed.message_id, "subject": parsed.subject, "score": score, "decision": decision}))
    else:
        verdict = "needs a place" if decision else "no alert"
        print(f"{score:.3f}  {verdict}  {parsed.subject!r} from {parsed.sender}")
    return 0


def cmd_explain(settings, args) -> int:
    app = _app(settings)
    _, document = app.document_for(args.message)
    print(app.model.explain(document))
    return 0


def cmd_label(settings, args) -> int:
    app = _app(settings)
    if args.review:
        from jeeves.model.review import review_uncertain

        done = review_uncertain(app, limit=args.limit, ask=input, show=print)
        print(f"labelled {done} messages")
        return 0
    if args.message is None or args.value is None:
        print("jeeves label: give MESSAGE and 0|1, or --review", file=sys.stderr)
        return 2
    pk = app.label(args.message, args.value)
    print(f"message {pk} labelled {args.value}")
    return 0


def cmd_replies(settings, args) -> int:
    summary = _app(settings).poll_replies()
    for pk, value in summary.labels:
        print(f"message {pk} labelled {value}")
    print(f"read {summary.read} replies: {summary.labelled} labelled, {summary.keywords} Twilio keywords, "
          f"{summary.help_queued} help text queued (sent by the next run), {summary.unclear} not understood, "
          f"{summary.ignored} from other numbers ignored, {summary.already} already applied")
    return 0


def cmd_status(settings, args) -> int:
    status = _app(settings).status()
    if args.json:
        print(json.dumps(status, indent=2, default=str))
        return 0
    model = status["model"]
    print(f"database   {status['database']}")
    print(f"model      {model.get('version') or model.get('error')}" + (f" (threshold {model['threshold']:.3f})" if "threshold" in model else "")
          + (f", trade-off {model['trade_off']}" if model.get("trade_off") else ""))
    print(f"messages   {status['messages']} stored, {status['predictions']} classified, {status['positives']} positive, {status['labelled']} labelled")
    live = status["live_quality"]
    offline = model.get("offline_precision")
    precision = f"live precision {live['precision']:.2f}" if live["precision"] is not None else "no live precision yet"
    print(f"alerts     {live['alerts']} in {live['days']} days, {live['judged']} judged by you ({precision}"
          + (f"; offline estimate {offline:.2f})" if offline is not None else ")"))
    outbox = ", ".join(f"{k} {v}" for k, v in sorted(status["outbox"].items())) or "empty"
    print(f"outbox     {outbox}")
    print(f"digest     {status.get('digest_waiting', 0)} message(s) waiting for the next digest")
    replies = status.get("sms_replies") or {}
    if any(replies.values()):
        print(f"replies    {replies.get('labelled', 0)} labelled by SMS, {replies.get('help', 0)} answered with help, "
              f"{replies.get('stranger', 0)} from other numbers ignored"
              + ("; you replied STOP: Twilio refuses texts until you reply START" if replies.get("opted_out") else ""))
    for problem in status["outbox_problems"]:
        print(f"  alert for #{problem['message']} {problem['status']} after {problem['attempts']} attempt(s): "
              f"{problem['code'] or ''} {problem['reason'] or ''}".rstrip())
    for account in status["accounts"]:
        state = f"error: {account['last_error']}" if account["last_error"] else f"last sync {account['last_sync'] or 'never'}"
        print(f"account    {account['name']} ({account['kind']}): {state}")
    return 0


def cmd_places(settings, args) -> int:
    learned = _app(settings).places(args.correspondent)
    if args.json:
        print(json.dumps([{"address": c.address, "name": c.name,
                           "places": [{"place": p.place, "kind": p.kind, "times": p.times,
                                       "last": p.last.isoformat() if p.last else None, "evidence": p.evidence}
                                      for p in c.places]} for c in learned], indent=2))
        return 0
    if not learned:
        print("no meeting places found in stored mail" + (f" with {args.correspondent}" if args.correspondent else ""))
        return 0
    for person in learned:
        print(f"{person.name} <{person.address}>" if person.name else person.address)
        for place in person.places:
            when = f", last {place.last:%Y-%m-%d}" if place.last else ""
            print(f"  {place.place} ({place.kind}): {place.times} conversation(s){when}")
    return 0


def cmd_models(settings, args) -> int:
    from jeeves.model.registry import list_models, set_current

    shipped = settings.model.shipped_fallback
    if args.use:
        set_current(settings.model.dir, args.use, shipped_dir=shipped)
        print(f"now serving {args.use} (a running daemon switches on its next message)")
        return 0
    entries = list_models(settings.model.dir, shipped)
    if not entries:
        print(f"no models in {settings.model.dir}")
        return 1
    print(f"  {'version':28} {'created':25} {'model':22} {'ROC AUC':>7} {'PR AUC':>7} {'thresh':>6}")
    for e in entries:
        fmt = lambda v: f"{v:.3f}" if isinstance(v, (int, float)) else "-"  # noqa: E731
        print(f"{'*' if e.current else ' '} {e.version:28} {e.created:25} {e.chosen:22} {fmt(e.roc_auc):>7} {fmt(e.pr_auc):>7} {fmt(e.threshold):>6}")
    return 0


def cmd_retrain(settings, args) -> int:
    from jeeves.model.retrain import retrain_and_maybe_promote

    result = retrain_and_maybe_promote(_app(settings), corpus_dir=args.corpus or _default_corpora(), quick=args.quick, progress=True)
    champ = result.champion_scores
    print(f"challenger {result.challenger}: ROC AUC {result.challenger_scores['roc_auc']:.3f}, recall {result.challenger_scores['recall']:.3f}"
          f" on {result.n_eval} held-out labels ({result.n_user_labels} of all labels are yours)")
    if champ:
        print(f"champion   {result.champion}: ROC AUC {champ['roc_auc']:.3f}, recall {champ['recall']:.3f}")
    print("promoted: now serving the challenger" if result.promoted else "kept the champion")
    return 0


def cmd_health(settings, args) -> int:
    # The model is checked against its card (file present, sha256, scikit-learn version) but not
    # unpickled: that takes seconds, and the daemon's start and ``jeeves classify`` do it anyway.
    try:
        app = _app(settings)
        app.store.counts()
        app.model_card()
    except JeevesError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    print("ok")
    return 0


def cmd_web(settings, args) -> int:
    from jeeves.web import serve

    serve(_app(settings), host=args.host, port=args.port, show=lambda line: print(line, flush=True))
    return 0


def cmd_demo(settings, args) -> int:
    from jeeves.demo import run_demo

    if not args.verbose:
        # The alerts and the summary are the demo's output; per-send log lines would drown them.
        logging.getLogger().setLevel(max(logging.getLogger().level, logging.WARNING))
    report = run_demo(settings)
    print(report.to_text())
    return 1 if report.run.errors else 0


COMMANDS = {
    "run": cmd_run,
    "import": cmd_import,
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "classify": cmd_classify,
    "explain": cmd_explain,
    "label": cmd_label,
    "replies": cmd_replies,
    "status": cmd_status,
    "models": cmd_models,
    "retrain": cmd_retrain,
    "health": cmd_health,
    "web": cmd_web,
    "places": cmd_places,
    "demo": cmd_demo,
}
