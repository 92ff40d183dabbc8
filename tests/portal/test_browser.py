"""The customer's self-service page in a real headless Chromium (Debian's `chromium` +
`chromium-driver`) on a phone-sized viewport, for a Spanish customer: the open invoices in
Spanish (dates, amounts), nothing wider than the screen, "Ya he pagado" recorded, the
printable statement, no CSP violation. Screenshots go to test-output/browser/."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import select

from cobro.db import default_engine, transaction
from cobro.models import Customer, Invoice, Task
from cobro.portal.links import create_link
from cobro.settings import Settings
from tests.helpers import free_port

pytestmark = pytest.mark.slow

SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PHONE = {"width": 390, "height": 844, "pixelRatio": 2}


@pytest.fixture
def portal_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """The web app on loopback and a link of a Spanish customer with three open invoices."""
    monkeypatch.setenv("COBRO_DATABASE_URL", f"sqlite:///{tmp_path / 'cobro.db'}")
    monkeypatch.setenv("COBRO_TEMPORAL_ADDRESS", "127.0.0.1:1")  # recorded without Temporal
    from cobro.db import upgrade
    from cobro.settings import get_settings
    from cobro.web.app import create_app

    get_settings.cache_clear()
    default_engine.cache_clear()
    upgrade()
    engine = default_engine()
    today = date.today()
    with transaction(engine) as s:
        c = Customer(
            account="ES-0042",
            name="Ferretería Núñez Hermanos S.L.",
            country="ES",
            language="es",
            timezone="Europe/Madrid",
        )
        s.add(c)
        s.flush()
        for number, late, amount in (("F-2026-101", 34, "1359.36"), ("F-2026-118", 9, "250.00")):
            s.add(
                Invoice(
                    number=number,
                    customer_id=c.id,
                    issue_date=today - timedelta(days=late + 30),
                    due_date=today - timedelta(days=late),
                    currency="EUR",
                    amount=Decimal(amount),
                    open_amount=Decimal(amount),
                )
            )
    settings = Settings(
        web_secret_key="s" * 32,
        var_dir=tmp_path,
        portal_pay_url_template="https://pay.example.com/c/{account}?amount={amount}",
    )
    link = create_link(engine, "ES-0042", 60, "test", settings)
    port = free_port()
    app = create_app(settings, engine)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the web app did not start"
        time.sleep(0.05)
    site = f"http://127.0.0.1:{port}"
    yield site, site + link.url[link.url.index("/p/") :]
    server.should_exit = True
    thread.join(10)
    get_settings.cache_clear()
    default_engine.cache_clear()


@pytest.fixture
def phone(tmp_path: Path) -> Iterator[WebDriver]:
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
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium'}",
        "--lang=es-ES",
    ):
        options.add_argument(flag)
    options.add_experimental_option("mobileEmulation", {"deviceMetrics": PHONE})
    options.add_experimental_option("prefs", {"intl.accept_languages": "es-ES,es"})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(5)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()
    shutil.rmtree(tmp_path / "chromium", ignore_errors=True)


def _ready(driver: WebDriver) -> None:
    WebDriverWait(driver, 10).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def _csp(driver: WebDriver) -> list[str]:
    return [
        e["message"]
        for e in driver.get_log("browser")
        if "Content Security Policy" in e["message"] or "Refused to" in e["message"]
    ]


def test_a_spanish_customer_on_a_phone(portal_site: tuple[str, str], phone: WebDriver) -> None:
    site, link = portal_site
    phone.get(link)
    _ready(phone)
    assert phone.execute_script("return window.innerWidth") == PHONE["width"]
    body = phone.find_element(By.TAG_NAME, "body").text
    assert "Facturas pendientes" in body and "Días de retraso" in body
    assert "1.359,36 €" in body and "F-2026-101" in body and "Total 1.609,36 €" in body
    assert "Ya he pagado" in body and "Pagar en línea" in body
    wider = phone.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    assert wider <= 0, f"the page is {wider} px wider than the phone"
    phone.save_screenshot(str(SHOTS / "portal-es-phone.png"))

    phone.find_element(By.NAME, "amount").send_keys("1.609,36")
    phone.find_element(By.NAME, "reference").send_keys("TRF 2026/0042")
    phone.find_element(By.ID, "paid").click()
    WebDriverWait(phone, 10).until(lambda d: "done=paid" in d.current_url)
    notice = phone.find_element(By.ID, "notice").text
    assert notice.startswith("Gracias: comprobaremos su pago"), notice
    phone.save_screenshot(str(SHOTS / "portal-es-paid.png"))

    phone.find_element(By.ID, "statement").click()
    WebDriverWait(phone, 10).until(lambda d: d.current_url.endswith("/statement"))
    _ready(phone)
    assert "Estado de cuenta" in phone.find_element(By.TAG_NAME, "h1").text
    phone.save_screenshot(str(SHOTS / "portal-es-statement.png"))
    assert _csp(phone) == []

    phone.get(f"{site}/p/1.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA")  # a forged link
    _ready(phone)
    assert "Este enlace no funciona" in phone.find_element(By.ID, "refused").text
    assert "Ferretería" not in phone.page_source
    phone.save_screenshot(str(SHOTS / "portal-es-refused.png"))

    with default_engine().connect() as conn:
        assert conn.scalar(select(Task.kind)) == "check_payment"
