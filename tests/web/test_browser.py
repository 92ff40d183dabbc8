"""The dashboard in a real headless Chromium (Debian's `chromium` + `chromium-driver`, driven
by Selenium): log in, open the portfolio, open a customer, pause dunning, see the timeline
event; a viewer has no pause button and is refused; a forged POST without the CSRF token is
refused; a collector filters the alerts inbox, bulk-acknowledges a page of alerts, takes a
task from the collectors' queue and finds it in "my tasks"; under the Content-Security-Policy
(no inline script) the language switch and the date fields still work and
the console shows no CSP violation. Screenshots go to
test-output/browser/."""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import uvicorn
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait
from sqlalchemy import Engine, select

from cobro.db import default_engine, transaction
from cobro.devkit.demo import load_demo
from cobro.models import Alert, Customer, RiskAssessment, Task, TimelineEvent
from cobro.queues.tasks import new_task
from cobro.settings import Settings
from cobro.users import create_user, set_language
from cobro.web.app import create_app
from tests.helpers import free_port

pytestmark = pytest.mark.slow

SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PASSWORD = "correct horse battery"


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("COBRO_DATABASE_URL", f"sqlite:///{tmp_path / 'cobro.db'}")
    monkeypatch.setenv("COBRO_TEMPORAL_ADDRESS", "127.0.0.1:1")  # recorded without Temporal
    from cobro.db import upgrade
    from cobro.settings import get_settings

    get_settings.cache_clear()
    default_engine.cache_clear()
    upgrade()
    load_demo(tmp_path / "demo", date.today())
    engine = default_engine()
    create_user(engine, "carla", PASSWORD, "collector", "Carla Collector")
    create_user(engine, "victor", PASSWORD, "viewer", "Victor Viewer")
    create_user(engine, "maria", PASSWORD, "collector", "María López")
    create_user(engine, "lucia", PASSWORD, "collector", "Lucía Fernández")  # the browser's
    pilar = create_user(engine, "pilar", PASSWORD, "collector", "Pilar Gómez")
    set_language(engine, pilar, "es")  # her own choice, whatever the browser says
    _seed_queues(engine)
    port = free_port()
    app = create_app(Settings(web_secret_key="s" * 32, var_dir=tmp_path), engine)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the dashboard did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    get_settings.cache_clear()
    default_engine.cache_clear()


ALERT_KINDS = [
    ("critical", "became_critical", "{name} is now critical (was medium); EUR 48,200.00 overdue"),
    ("warning", "large_overdue", "{name} owes EUR 31,950.00 overdue, oldest 63 days late"),
    ("warning", "limit_almost_used", "{name} uses 94 % of its cover (EUR 50,000.00)"),
    ("info", "cover_expiring", "cover of {name} expires in 21 days; request a renewal"),
]


def _seed_queues(engine: Engine) -> None:
    """What a morning's classification leaves: 120 alerts on 120 customers of various risk
    classes, and call tasks waiting in the collectors' queue (nobody owns these customers)."""
    classes = ["critical", "high", "medium", "low"]
    with transaction(engine) as s:
        customers = s.execute(select(Customer.id, Customer.name).order_by(Customer.id)).all()
        for i, (cid, name) in enumerate(customers[:120]):
            severity, rule, message = ALERT_KINDS[i % 4 if i % 5 else 0]
            s.add(
                RiskAssessment(
                    customer_id=cid,
                    risk_class=classes[i % 4],
                    ruleset_hash="h" * 64,
                    explanation={"because": "seeded"},
                )
            )
            s.add(
                Alert(
                    customer_id=cid,
                    name=rule,
                    severity=severity,
                    message=message.format(name=name),
                    dedup_key=f"seed:{i}",
                    ruleset_hash="h" * 64,
                )
            )
        for cid, _name in customers[:6]:
            note = "call the accounts payable department: INV-2026-000123"
            s.add(new_task(s, cid, "call", note, "collector", date.today(), f"seed-task:{cid}"))
        nunez = s.get(Customer, customers[150][0])
        assert nunez is not None
        nunez.name = NUNEZ  # the ORM write folds it into search_text ("ferreteria nunez ...")


NUNEZ = "Ferretería Núñez Hermanos S.L."


def _chromium(tmp_path: Path, accept_language: str = "en-US,en") -> WebDriver:
    """Debian's headless Chromium; `accept_language` is what it sends as Accept-Language."""
    assert CHROMIUM.exists() and CHROMEDRIVER.exists(), (
        "install Debian's chromium and chromium-driver (make test does)"
    )
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1400",
        f"--user-data-dir={tmp_path / 'chromium'}",
        f"--lang={accept_language.split(',')[0]}",
    ):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"intl.accept_languages": accept_language})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # CSP violations
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(5)
    SHOTS.mkdir(parents=True, exist_ok=True)
    return driver


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    driver = _chromium(tmp_path)
    yield driver
    driver.quit()
    shutil.rmtree(tmp_path / "chromium", ignore_errors=True)


def wait_text(driver: WebDriver, element_id: str, text: str) -> None:
    """Wait for the next page: an element found before a click goes stale after it."""
    WebDriverWait(driver, 10, ignored_exceptions=[WebDriverException]).until(
        lambda d: d.find_element(By.ID, element_id).text == text
    )


def wait_source(driver: WebDriver, text: str) -> None:
    WebDriverWait(driver, 10, ignored_exceptions=[WebDriverException]).until(
        lambda d: text in d.page_source
    )


def log_in(driver: WebDriver, site: str, username: str) -> None:
    if "/login" not in driver.current_url:
        driver.get(f"{site}/login")
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "login").click()
    WebDriverWait(driver, 10).until(lambda d: "/login" not in d.current_url)
    WebDriverWait(driver, 10).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def test_collector_pauses_dunning_and_sees_it_on_the_timeline(
    site: str, browser: WebDriver
) -> None:
    browser.get(f"{site}/customers/C00001")
    assert "/login" in browser.current_url, "pages need a login"
    log_in(browser, site, "carla")
    assert browser.current_url.endswith("/customers/C00001"), "back where we were going"

    browser.get(f"{site}/")
    assert "Aging balance" in browser.page_source
    assert browser.find_elements(By.CSS_SELECTOR, "svg.chart")
    browser.save_screenshot(str(SHOTS / "portfolio.png"))

    browser.get(f"{site}/customers?country=FR")
    browser.find_element(By.LINK_TEXT, "C00001").click()
    wait_text(browser, "dunning-state", "Active")
    browser.save_screenshot(str(SHOTS / "customer.png"))
    browser.find_element(By.ID, "pause-reason").send_keys("customer disputes invoice <42>")
    browser.find_element(By.ID, "pause").click()

    wait_text(browser, "dunning-state", "Paused")
    timeline = browser.find_element(By.ID, "timeline").text
    assert "Reminders paused" in timeline and "carla" in timeline
    assert "customer disputes invoice <42>" in timeline  # shown as text, not markup
    browser.save_screenshot(str(SHOTS / "paused.png"))
    with default_engine().connect() as conn:
        actor = conn.scalar(
            select(TimelineEvent.actor).where(TimelineEvent.kind == "dunning.paused")
        )
    assert actor == "carla"


def test_viewer_cannot_pause_and_forged_posts_are_refused(site: str, browser: WebDriver) -> None:
    log_in(browser, site, "victor")
    browser.get(f"{site}/customers/C00001")
    assert not browser.find_elements(By.ID, "pause")
    assert "can look but not pause" in browser.page_source
    # a viewer crafting the form by hand, with its own valid CSRF token: 403
    token = browser.find_element(By.NAME, "csrf_token").get_attribute("value")
    browser.execute_script(
        """const f = document.createElement('form'); f.method = 'post';
        f.action = '/customers/C00001/pause';
        for (const [k, v] of [['reason', 'sneaky'], ['csrf_token', arguments[0]]]) {
          const i = document.createElement('input'); i.name = k; i.value = v; f.appendChild(i); }
        document.body.appendChild(f); f.submit();""",
        token,
    )
    wait_source(browser, "needs the collector role")
    browser.save_screenshot(str(SHOTS / "viewer-refused.png"))

    # a collector's session, a forged form without the CSRF token (as another site would)
    browser.delete_all_cookies()
    log_in(browser, site, "carla")
    browser.get(f"{site}/customers/C00001")
    browser.execute_script(
        """const f = document.createElement('form'); f.method = 'post';
        f.action = '/customers/C00001/pause';
        const i = document.createElement('input'); i.name = 'reason'; i.value = 'forged';
        f.appendChild(i); document.body.appendChild(f); f.submit();"""
    )
    wait_source(browser, "CSRF token missing or wrong")
    browser.save_screenshot(str(SHOTS / "csrf-refused.png"))
    with default_engine().connect() as conn:
        assert (
            conn.scalar(select(TimelineEvent.id).where(TimelineEvent.kind == "dunning.paused"))
            is None
        )


def test_collector_works_the_alerts_inbox_and_takes_a_task(site: str, browser: WebDriver) -> None:
    log_in(browser, site, "maria")
    browser.get(f"{site}/alerts")
    assert browser.find_element(By.ID, "page-range").text == "1–50 of 120"
    rows = browser.find_elements(By.CSS_SELECTOR, "#alerts tbody tr")
    assert len(rows) == 50
    heights = {round(r.rect["height"]) for r in rows}
    assert max(heights) < 40, f"one line per alert, not wrapped rows: {heights}"
    browser.save_screenshot(str(SHOTS / "alerts.png"))

    Select(browser.find_element(By.ID, "filter-severity")).select_by_visible_text("warning")
    Select(browser.find_element(By.ID, "filter-name")).select_by_visible_text("large_overdue")
    browser.find_element(By.ID, "filter").click()
    wait_text(browser, "page-range", "1–24 of 24")
    assert all(
        "large_overdue" in r.text
        for r in browser.find_elements(By.CSS_SELECTOR, "#alerts tbody tr")
    )
    browser.find_element(By.ID, "select-all").click()
    assert browser.find_element(By.ID, "selected-count").text == "24"
    browser.save_screenshot(str(SHOTS / "alerts-filtered.png"))
    browser.find_element(By.ID, "bulk-acknowledge").click()
    wait_source(browser, "24 alerts acknowledged")
    assert "large_overdue" in browser.current_url, "back to the filtered inbox"
    assert "No alert here." in browser.page_source
    browser.save_screenshot(str(SHOTS / "alerts-acknowledged.png"))

    browser.get(f"{site}/alerts?state=open&severity=critical")
    wait_text(browser, "page-range", "1–48 of 48")
    for box in browser.find_elements(By.CSS_SELECTOR, "input.pick")[:3]:
        box.click()
    Select(browser.find_element(By.ID, "bulk-assignee")).select_by_value("maria")
    browser.find_element(By.ID, "bulk-assign").click()
    wait_source(browser, "3 alerts assigned to maria")

    browser.get(f"{site}/tasks?view=queue")
    assert "To take (6)" in browser.find_element(By.ID, "view-queue").text
    browser.save_screenshot(str(SHOTS / "tasks-queue.png"))
    first = browser.find_elements(By.CSS_SELECTOR, "button.take")[0]
    task_id = int(first.get_attribute("id").removeprefix("take-"))
    first.click()
    wait_source(browser, f"task {task_id} is yours")
    assert "To take (5)" in browser.find_element(By.ID, "view-queue").text
    browser.find_element(By.ID, "view-mine").click()
    wait_text(browser, "view-mine", "My tasks (1)")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#tasks tbody tr")) == 1
    browser.save_screenshot(str(SHOTS / "tasks-mine.png"))
    with default_engine().connect() as conn:
        assert conn.scalar(select(Task.assignee).where(Task.id == task_id)) == "maria"
        acked = conn.scalars(
            select(Alert.acknowledged_by).where(Alert.state == "acknowledged")
        ).all()
    assert acked == ["maria"] * 24


def csp_violations(driver: WebDriver) -> list[str]:
    return [
        e["message"]
        for e in driver.get_log("browser")
        if "Content Security Policy" in e["message"] or "Refused to" in e["message"]
    ]


def test_the_pages_work_under_the_content_security_policy(site: str, browser: WebDriver) -> None:
    log_in(browser, site, "carla")
    for path in ("/", "/customers", "/customers/C00001", "/alerts", "/tasks", "/reports"):
        browser.get(f"{site}{path}")
        WebDriverWait(browser, 10).until(
            lambda d: d.execute_script("return document.readyState") == "complete"
        )
    assert csp_violations(browser) == []
    browser.get(f"{site}/customers/C00001")
    # dates.js (a static file) writes the chosen date beside a date field
    until = browser.find_element(By.CSS_SELECTOR, 'input[type="date"][name="until"]')
    browser.execute_script(
        "arguments[0].value = '2026-05-01'; arguments[0].dispatchEvent(new Event('input'))",
        until,
    )
    assert "May 1, 2026" in browser.find_element(By.CSS_SELECTOR, "output.date-shown").text
    # language.js: choosing a language submits the switch (no onchange attribute)
    Select(browser.find_element(By.ID, "language")).select_by_value("es")
    WebDriverWait(browser, 10).until(
        lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "es"
    )
    assert browser.current_url.endswith("/customers/C00001"), "back on the same page"
    assert "Clientes" in browser.page_source
    browser.save_screenshot(str(SHOTS / "csp-language.png"))
    assert csp_violations(browser) == []


@pytest.fixture
def spanish_browser(tmp_path: Path) -> Iterator[WebDriver]:
    """A Chromium set up in Spanish: it sends `Accept-Language: es-ES,es`."""
    driver = _chromium(tmp_path, "es-ES,es")
    yield driver
    driver.quit()
    shutil.rmtree(tmp_path / "chromium", ignore_errors=True)


# an amount as Spanish writes it: `1.359,36 €` (CLDR: a no-break space before the sign)
SPANISH_MONEY = re.compile(r"\b\d{1,3}(?:\.\d{3})*,\d{2}[\u00a0\u202f ]€")
ENGLISH_MONEY = re.compile(r"€\d|(?<!\()\bEUR\b(?!\))|\d,\d{3}\.\d{2}\b")


def page_text(driver: WebDriver) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def test_a_spanish_credit_manager_works_in_spanish(site: str, spanish_browser: WebDriver) -> None:
    browser = spanish_browser
    # before login, the browser's Accept-Language decides
    browser.get(f"{site}/login")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "es"
    assert browser.find_element(By.ID, "login").text == "Iniciar sesión"
    assert "Contraseña" in page_text(browser)
    browser.save_screenshot(str(SHOTS / "es-login.png"))
    log_in(browser, site, "lucia")

    browser.get(f"{site}/")
    browser.save_screenshot(str(SHOTS / "es-portfolio.png"))
    text = page_text(browser)
    assert "Antigüedad de saldos" in text and "Aging balance" not in text
    assert SPANISH_MONEY.search(text), "amounts as `1.359,36 €`"
    figures = " ".join(e.text for e in browser.find_elements(By.CSS_SELECTOR, ".tiles, table"))
    english = ENGLISH_MONEY.search(figures)
    assert not english, figures[max(0, english.start() - 80) : english.end() + 80]

    # "nunez" finds "Núñez": case and accents ignored
    browser.get(f"{site}/customers")
    browser.find_element(By.ID, "search").send_keys("nunez")
    browser.find_element(By.ID, "filter").click()
    WebDriverWait(browser, 10).until(lambda d: "q=nunez" in d.current_url)
    rows = browser.find_elements(By.CSS_SELECTOR, "#customers tr")[1:]
    assert [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows] == [NUNEZ]
    assert SPANISH_MONEY.search(rows[0].text), rows[0].text
    browser.save_screenshot(str(SHOTS / "es-customer-search.png"))

    # the alerts inbox: filtered by state, severity and type, then bulk-acknowledged
    browser.get(f"{site}/alerts")
    assert browser.find_element(By.ID, "page-range").text == "1–50 de 120"
    state = Select(browser.find_element(By.ID, "filter-state"))
    assert state.first_selected_option.text == "abierta"
    severity = Select(browser.find_element(By.ID, "filter-severity"))
    severity.select_by_visible_text("aviso")
    kind = Select(browser.find_element(By.ID, "filter-name"))
    kind.select_by_value("large_overdue")
    assert kind.first_selected_option.text == "Vencido importante"
    browser.find_element(By.ID, "filter").click()
    wait_text(browser, "page-range", "1–24 de 24")
    browser.find_element(By.ID, "select-all").click()
    assert browser.find_element(By.ID, "selected-count").text == "24"
    browser.save_screenshot(str(SHOTS / "es-alerts-filtered.png"))
    browser.find_element(By.ID, "bulk-acknowledge").click()
    wait_source(browser, "24 alertas revisadas")
    assert "Ninguna alerta aquí." in page_text(browser)
    browser.save_screenshot(str(SHOTS / "es-alerts-acknowledged.png"))

    # a task taken from the collectors' queue, then in "my tasks"
    browser.get(f"{site}/tasks?view=queue")
    assert browser.find_element(By.ID, "view-queue").text == "Por tomar (6)"
    browser.save_screenshot(str(SHOTS / "es-tasks-queue.png"))
    first = browser.find_elements(By.CSS_SELECTOR, "button.take")[0]
    task_id = int(first.get_attribute("id").removeprefix("take-"))
    first.click()
    wait_source(browser, f"la tarea {task_id} es suya")
    browser.find_element(By.ID, "view-mine").click()
    wait_text(browser, "view-mine", "Mis tareas (1)")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#tasks tbody tr")) == 1
    browser.save_screenshot(str(SHOTS / "es-tasks-mine.png"))
    with default_engine().connect() as conn:
        assert conn.scalar(select(Task.assignee).where(Task.id == task_id)) == "lucia"
        acked = conn.scalars(
            select(Alert.acknowledged_by).where(Alert.state == "acknowledged")
        ).all()
    assert acked == ["lucia"] * 24


def test_the_users_own_language_wins_over_the_browsers(site: str, browser: WebDriver) -> None:
    browser.get(f"{site}/login")  # an English browser: the login page is in English
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    assert browser.find_element(By.ID, "login").text == "Log in"
    log_in(browser, site, "pilar")  # who chose Spanish
    for path in ("/", "/customers", "/alerts", "/tasks"):
        browser.get(f"{site}{path}")
        assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "es", path
    assert "Mis tareas (0)" in page_text(browser)
    browser.get(f"{site}/")
    assert "Antigüedad de saldos" in page_text(browser)
    browser.save_screenshot(str(SHOTS / "es-own-language.png"))
