"""``jeeves web`` in a real browser: headless Chromium (Debian's) driven by Selenium.

The page serves a temp SQLite database seeded through the library: the sample mailbox's planted
messages are stored, classified by the shipped model and their alerts sent through the console
notifier, so the alerts, scores, reasons and unsure queue on the page are the real ones. One
browser and one server per module.
"""

from __future__ import annotations

import io
import mailbox
import re

import pytest
import requests
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from jeeves import resources
from jeeves.config import DatabaseSettings, MailboxSettings, ModelSettings, NotifySettings, Settings
from jeeves.notify import ConsoleNotifier
from jeeves.service import Jeeves
from jeeves.web import WebServer
from tests.fixtures_web import Browser

pytestmark = pytest.mark.browser

PLANTED = resources.sample_mailbox().parent / "planted.csv"


def _planted_mailbox(out) -> str:
    """The sample mailbox's 20 planted messages (requests and look-alikes) as an mbox."""
    wanted = {line.split(",", 1)[0] for line in PLANTED.read_text().splitlines()[1:]}
    source = mailbox.mbox(resources.sample_mailbox(), create=False)
    box = mailbox.mbox(out)
    for key in source.iterkeys():
        if source.get(key)["Message-ID"] in wanted:
            box.add(source.get_bytes(key))
    box.flush()
    return str(out)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("web")
    settings = Settings(
        data_dir=tmp,
        database=DatabaseSettings(url=f"sqlite:///{tmp / 'jeeves.db'}"),
        model=ModelSettings(dir=resources.shipped_models_dir()),
        mailboxes=[MailboxSettings(path=_planted_mailbox(tmp / "planted.mbox"), notify=True)],
        notify=NotifySettings(channel="console", digest_time=None, thread_window_hours=0, max_per_hour=0),
    )
    jeeves = Jeeves(settings, notifier=ConsoleNotifier(io.StringIO()))
    report = jeeves.run_once()
    assert report.notify.sent >= 2, "the planted requests should give at least two alerts to judge"
    yield jeeves
    jeeves.close()


@pytest.fixture(scope="module")
def server(app):
    web = WebServer(app).start()
    yield web
    web.stop()


@pytest.fixture(scope="module")
def browser(server):
    chromium = Browser()
    chromium.driver.get(server.url)  # the token URL: swapped for the session cookie
    yield chromium.driver
    chromium.quit()


def _live(driver) -> tuple[str, int, int]:
    """(shown precision, confirmed, judged) from the page's live-precision figure."""
    detail = driver.find_element(By.ID, "live-detail").text
    confirmed, judged = map(int, re.match(r"(\d+) of (\d+) judged", detail).groups())
    return driver.find_element(By.ID, "live-precision").text, confirmed, judged


def _after_reload(driver, action) -> None:
    """Run ``action`` and wait until the browser shows the page it navigates to.

    The old document is marked with a window property that the new one cannot have. Asking an
    element of the old page whether it is stale races with the navigation itself: Chromium can
    answer "node does not belong to the document", which is neither stale nor live.
    """
    driver.execute_script("window.__jeevesOldPage = true;")
    action()
    WebDriverWait(driver, 60, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script(
            "return window.__jeevesOldPage === undefined && document.readyState === 'complete'"
        )
    )
    WebDriverWait(driver, 60).until(expected_conditions.presence_of_element_located((By.ID, "live-precision")))


def _item(driver, pk: int):
    return driver.find_element(By.ID, f"m-{pk}")


def _press(driver, key: str) -> None:
    driver.find_element(By.TAG_NAME, "body").send_keys(key)


def _web_label(app, pk: int):
    label = app.store.current_labels().get(pk)
    return (label.value, label.source) if label else None


def test_requests_without_the_token_are_refused(server):
    for path in ("/", "/unsure", "/static/keys.js", "/?token=not-the-token"):
        assert requests.get(server.base_url + path, timeout=30).status_code == 403, path
    assert requests.post(server.base_url + "/label", data={"message": "1", "value": "0"}, timeout=30).status_code == 403

    with requests.Session() as session:
        page = session.get(server.url, timeout=60)
        assert page.status_code == 200 and "Recent alerts" in page.text
        assert "token=" not in page.url, "the token is swapped for a cookie and dropped from the address"
        cookie = page.history[0].headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie


def test_a_label_without_the_csrf_token_or_from_another_origin_is_refused(app, server, browser):
    browser.get(server.base_url + "/unsure")
    pk = int(browser.find_element(By.CSS_SELECTOR, "li.item").get_attribute("data-message"))
    # The browser holds a valid session cookie; a form without the CSRF token is still refused.
    browser.execute_script(
        "const f = document.createElement('form'); f.method = 'post'; f.action = '/label';"
        "for (const [k, v] of [['message', arguments[0]], ['value', '0']]) {"
        "  const i = document.createElement('input'); i.name = k; i.value = v; f.appendChild(i); }"
        "document.body.appendChild(f); f.submit();", str(pk))
    WebDriverWait(browser, 60, ignored_exceptions=(WebDriverException,)).until(
        lambda d: "security token is missing" in d.find_element(By.TAG_NAME, "body").text)
    assert _web_label(app, pk) is None

    session_cookie = browser.get_cookie("jeeves_web")["value"]
    browser.get(server.base_url + "/unsure")
    csrf = browser.find_element(By.CSS_SELECTOR, "input[name=csrf]").get_attribute("value")
    form = {"csrf": csrf, "message": str(pk), "value": "0", "back": "unsure"}
    cookies = {"jeeves_web": session_cookie}
    foreign = requests.post(server.base_url + "/label", data=form, cookies=cookies, allow_redirects=False,
                            headers={"Origin": "http://evil.example"}, timeout=30)
    assert foreign.status_code == 403 and _web_label(app, pk) is None
    own = requests.post(server.base_url + "/label", data=form, cookies=cookies, allow_redirects=False,
                        headers={"Origin": server.base_url}, timeout=30)
    assert own.status_code == 303 and _web_label(app, pk) == (0, "web")


def test_marking_alerts_with_a_click_and_a_key_changes_live_precision(app, server, browser):
    browser.get(server.base_url + "/")
    unjudged = [int(li.get_attribute("data-message")) for li in browser.find_elements(By.CSS_SELECTOR, "li.item")
                if li.find_element(By.CSS_SELECTOR, ".judged").get_attribute("data-verdict") == ""]
    first, second = unjudged[:2]
    _, confirmed, judged = _live(browser)
    # Reasons from the model's explanation are shown with each alert.
    assert _item(browser, first).find_elements(By.CSS_SELECTOR, ".reasons code")

    # A click on "Right" for the first alert.
    button = _item(browser, first).find_element(By.CSS_SELECTOR, "button[data-key=right]")
    _after_reload(browser, button.click)
    assert _web_label(app, first) == (1, "web")
    shown, now_confirmed, now_judged = _live(browser)
    assert (now_confirmed, now_judged) == (confirmed + 1, judged + 1)
    assert shown == f"{(confirmed + 1) / (judged + 1):.2f}"
    assert _item(browser, first).find_element(By.CSS_SELECTOR, ".judged").text == "marked right"

    # The key "n" on the second: the page selects it after the first was labelled.
    while int(browser.find_element(By.CSS_SELECTOR, "li.item.selected").get_attribute("data-message")) != second:
        _press(browser, "j")
    _after_reload(browser, lambda: _press(browser, "n"))
    assert _web_label(app, second) == (0, "web")
    shown, now_confirmed, now_judged = _live(browser)
    assert (now_confirmed, now_judged) == (confirmed + 1, judged + 2)
    assert shown == f"{(confirmed + 1) / (judged + 2):.2f}"
    assert app.live_quality().precision == pytest.approx((confirmed + 1) / (judged + 2))
    # The chart counts today's text marked wrong.
    today = browser.find_elements(By.CSS_SELECTOR, "svg.chart g.day")[-1]
    assert int(today.get_attribute("data-wrong")) >= 1
    assert "marked wrong" in browser.find_element(By.ID, "share-wrong").text


def test_the_unsure_queue_is_labelled_with_the_keyboard(app, server, browser):
    browser.get(server.base_url + "/unsure")
    queue = [int(li.get_attribute("data-message")) for li in browser.find_elements(By.CSS_SELECTOR, "li.item")]
    assert len(queue) >= 3
    _after_reload(browser, lambda: _press(browser, "1"))  # the first is selected on arrival
    assert _web_label(app, queue[0]) == (1, "web")
    after = [int(li.get_attribute("data-message")) for li in browser.find_elements(By.CSS_SELECTOR, "li.item")]
    assert queue[0] not in after
    assert int(browser.find_element(By.CSS_SELECTOR, "li.item.selected").get_attribute("data-message")) == queue[1]

    _press(browser, "j")  # skip one, label the next wrong
    assert int(browser.find_element(By.CSS_SELECTOR, "li.item.selected").get_attribute("data-message")) == queue[2]
    _after_reload(browser, lambda: _press(browser, "0"))
    assert _web_label(app, queue[2]) == (0, "web")
    assert _web_label(app, queue[1]) is None
