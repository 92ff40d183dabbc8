"""Imported account ids keep to a safe character set (they go into URLs, file names and
workflow ids): a path, CR/LF or a control character is refused as `FILE:LINE: message`,
nothing written, in all three imports; control characters are stripped from names."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cobro.importing import ImportFailed, import_csv
from cobro.models import Customer

RULE = "may only have letters, digits, '.', '_' and '-'"


def _write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode())
    return path


@pytest.mark.parametrize(
    "account",
    ["../customers/C00001", "C1\rX", "C1\nX", "C1\x1bX", "C 1", ".hidden", "-C1", "C..1", "C1/2"],
)
def test_unsafe_account_ids_are_refused(engine: Engine, tmp_path: Path, account: str) -> None:
    quoted = '"' + account + '"'
    path = _write(tmp_path / "c.csv", f"account,name,country\nC0,Fine SA,FR\n{quoted},Bad SA,FR\n")
    with pytest.raises(ImportFailed) as failed:
        import_csv("customers", path, engine)
    (error,) = failed.value.errors
    assert error.startswith(f"{path}:3: account: account {account!r} {RULE}"), error
    assert "\n" not in error and "\r" not in error, "one line"
    with Session(engine) as s:
        assert s.scalars(select(Customer)).all() == [], "nothing written"


def test_invoices_and_payments_check_the_account_too(engine: Engine, tmp_path: Path) -> None:
    invoices = _write(
        tmp_path / "i.csv",
        "number,account,issue_date,due_date,currency,amount\n"
        "F1,../C1,2026-01-01,2026-02-01,EUR,10.00\n",
    )
    with pytest.raises(ImportFailed) as failed:
        import_csv("invoices", invoices, engine)
    assert failed.value.errors[0].startswith(f"{invoices}:2: account: account '../C1' {RULE}")
    payments = _write(
        tmp_path / "p.csv", "reference,account,date,currency,amount\nP1,C1\x1b,2026-01-01,EUR,1\n"
    )
    with pytest.raises(ImportFailed) as failed:
        import_csv("payments", payments, engine)
    assert failed.value.errors[0].startswith(f"{payments}:2: account:")


def test_control_characters_are_stripped_from_names(engine: Engine, tmp_path: Path) -> None:
    path = _write(
        tmp_path / "c.csv",
        'account,name,country\nC-1.a_b,"Alpha\r\nSAS\x07 \u202egnp.exe\tLtd",FR\n',
    )
    import_csv("customers", path, engine)
    with Session(engine) as s:
        (customer,) = s.scalars(select(Customer)).all()
    assert (customer.account, customer.name) == ("C-1.a_b", "Alpha SAS gnp.exe Ltd")
    only = _write(tmp_path / "d.csv", 'account,name,country\nC2,"\x07\x08",FR\n')
    with pytest.raises(ImportFailed) as failed:
        import_csv("customers", only, engine)
    assert failed.value.errors == [f"{only}:2: name: the name has nothing but control characters"]
