"""The dashboard in a real headless Chromium (Debian's `chromium` + `chromium-driver`, driven
by Selenium): log in, open the portfolio, open a customer, pause dunning, see the timeline
event; a viewer has no pause button and is refused; a forged POST without the CSRF token is
refused. Screenshots go to test-output/browser/."""

from __future__ import annotations

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
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import select

from cobro.db import default_engine
from cobro.devkit.demo import load_demo
from cobro.models import TimelineEvent
from cobro.settings import Settings
from cobro.users import create_user
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


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
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
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(5)
    SHOTS.mkdir(parents=True, exist_ok=True)
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
