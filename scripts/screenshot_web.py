"""Take the README's screenshot of ``jeeves web`` (docs/img/web.png) in headless Chromium.

The page serves a fresh copy of the demo (the sample mailbox, the shipped model, console alerts
in a temp dir); a few alerts are then judged through the library as a user would judge them,
with the labels a person checked for the planted messages. Needs what the browser tests need
(Debian's chromium and chromium-driver: scripts/bootstrap.sh --test).

    .venv/bin/python scripts/screenshot_web.py [OUT.png]
"""

from __future__ import annotations

import csv
import io
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from jeeves import resources  # noqa: E402
from jeeves.config import Settings  # noqa: E402
from jeeves.demo import demo_settings  # noqa: E402
from jeeves.notify import ConsoleNotifier  # noqa: E402
from jeeves.service import Jeeves  # noqa: E402
from jeeves.web import WebServer  # noqa: E402
from tests.fixtures_web import Browser  # noqa: E402

#: Planted alerts judged before the screenshot, so the figures and the chart have verdicts.
JUDGED = 4


def main(out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="jeeves-screenshot-") as tmp:
        app = Jeeves(demo_settings(Settings(data_dir=Path(tmp))), notifier=ConsoleNotifier(io.StringIO()))
        app.run_once()
        with open(resources.planted_csv(), newline="") as handle:
            planted = {row["message_id"]: int(row["label"]) for row in csv.DictReader(handle)}
        flagged = app.store.flagged_by_message_id(list(planted))
        alerted = sorted((pk, planted[mid]) for mid, (pk, _subject, was_flagged, _digest) in flagged.items() if was_flagged)
        # Both kinds of verdict, as a user gives them: confirmed requests and false alarms.
        for value in (1, 0):
            for pk, _ in [a for a in alerted if a[1] == value][-JUDGED // 2:]:
                app.label(str(pk), value, source="web")
        server = WebServer(app).start()
        browser = Browser()
        try:
            browser.driver.get(server.url)
            browser.driver.find_element("tag name", "body").send_keys("j")
            out.parent.mkdir(parents=True, exist_ok=True)
            browser.driver.save_screenshot(str(out))
        finally:
            browser.quit()
            server.stop()
            app.close()
    print(f"saved {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "img" / "web.png")
