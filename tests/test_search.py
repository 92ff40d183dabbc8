"""Customer search ignoring case and accents (`cobro.search`), on SQLite and PostgreSQL: the
stored `search_text` is kept by every write path (the ORM, the CSV import's insert and
update), and one condition serves the customers page, the API and the CLI."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from cobro.db import transaction
from cobro.importing import import_csv
from cobro.models import Customer
from cobro.search import compact, fold, search_text
from cobro.web.queries import CustomerFilters, list_customers
from tests.helpers.web import logged_in

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


def test_fold_and_compact() -> None:
    assert fold("  Ferretería  NÚÑEZ ") == "ferreteria nunez"
    assert fold("Straße Øresund Łódź Œuvre Æther") == "strasse oresund lodz oeuvre aether"
    assert compact("FR 72-139.986.988") == "fr72139986988"
    assert search_text("C1", "Café Müller", "123 456 789", None, "Compta@Muller.DE") == (
        "c1 | cafe muller | compta@muller.de | 123 456 789 | 123456789"
    )


def _write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("account,name,country,siren,vat,email\n" + "\n".join(rows) + "\n")
    return path


def _found(engine: Engine, q: str) -> list[str]:
    rows, total = list_customers(engine, date.today(), CustomerFilters(q=q))
    assert total == len(rows)
    return [r.account for r in rows]


def test_every_write_path_keeps_the_search_text(engine: Engine, tmp_path: Path) -> None:
    with transaction(engine) as s:  # the ORM
        s.add(Customer(account="O1", name="Ñandú Logística", country="ES", language="es",
                       timezone="Europe/Madrid"))  # fmt: skip
    import_csv(  # the import's bulk insert
        "customers",
        _write_csv(
            tmp_path / "c.csv",
            [
                "N1,Ferretería Núñez SL,ES,,ESB12345678,cobros@nunez.example",
                "N2,Müller & Söhne GmbH,DE,,DE 123 456 789,",
                "N3,Société Générale d'Équipement,FR,552 120 222,FR27552120222,",
                "N4,100% Discount_Store,GB,,,",
            ],
        ),
        engine,
    )
    assert _found(engine, "nunez") == ["N1"]
    assert _found(engine, "NÚÑEZ") == ["N1"]
    assert _found(engine, "muller") == ["N2"] and _found(engine, "sohne") == ["N2"]
    assert _found(engine, "equipement") == ["N3"] and _found(engine, "GÉNÉRALE") == ["N3"]
    assert _found(engine, "nandu") == ["O1"]
    assert _found(engine, "552120222") == ["N3"]  # SIREN typed without its spaces
    assert _found(engine, "de123456789") == ["N2"]  # VAT typed without its spaces
    assert _found(engine, "DE 123 456") == ["N2"]
    assert _found(engine, "cobros@nunez") == ["N1"]  # email
    assert _found(engine, "n1") == ["N1"]  # account
    assert _found(engine, "100%") == ["N4"] and _found(engine, "t_s") == ["N4"]  # LIKE escaped
    assert _found(engine, "%") == ["N4"] and _found(engine, "_") == ["N4"]
    assert _found(engine, "   ") == ["N1", "N2", "N3", "N4", "O1"]
    # the import's update and an ORM update change what a customer is found by
    import_csv(
        "customers", _write_csv(tmp_path / "d.csv", ["N1,Ferretería Ibáñez SL,ES,,,"]), engine
    )
    assert _found(engine, "nunez") == [] and _found(engine, "ibanez") == ["N1"]
    with transaction(engine) as s:
        s.scalar(select(Customer).where(Customer.account == "O1")).name = "Pingüino SA"
    assert _found(engine, "pinguino") == ["O1"] and _found(engine, "nandu") == []


def test_the_page_the_api_and_the_cli_find_the_same(
    engine: Engine, db_url: str, tmp_path: Path, use_database: str
) -> None:
    import_csv(
        "customers",
        _write_csv(tmp_path / "c.csv", ["N1,Ferretería Núñez SL,ES,,,", "X1,Other SA,FR,,,"]),
        engine,
    )
    client = logged_in(engine, db_url)
    page = client.get("/customers", params={"q": "nunez"})
    assert "Ferretería Núñez SL" in page.text and "Other SA" not in page.text
    api = client.get("/api/customers", params={"q": "NUNEZ"}).json()
    assert [c["account"] for c in api["customers"]] == ["N1"]
    from cobro.cli import app

    out = CliRunner().invoke(app, ["customers", "list", "--search", "núñez", "--json"])
    assert out.exit_code == 0, out.output
    assert [c["account"] for c in json.loads(out.output)["rows"]] == ["N1"]
