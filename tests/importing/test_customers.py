"""Customer import on SQLite and PostgreSQL: upsert, normalisation, timeline, idempotence."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cobro.importing import ImportFailed, import_csv
from cobro.models import Customer, TimelineEvent
from tests.helpers.importing import CUSTOMERS, count, dump, events, import_runs, write


def customers(engine: Engine) -> dict[str, Customer]:
    with Session(engine) as session:
        return {c.account: c for c in session.scalars(select(Customer))}


def test_import_normalises_and_defaults(engine: Engine, tmp_path: Path) -> None:
    report = import_csv("customers", write(tmp_path / "c.csv", CUSTOMERS), engine)
    assert (report.rows, report.created, report.updated, report.unchanged) == (3, 3, 0, 0)
    got = customers(engine)
    c1, c2, c3 = got["C1"], got["C2"], got["C3"]
    assert (c1.name, c1.country, c1.phone, c1.language, c1.timezone) == (
        "Alpha SAS",
        "FR",
        "+33123456789",
        "fr",
        "Europe/Paris",
    )
    assert (c2.phone, c2.email, c2.language, c2.timezone) == (
        "+12015550123",
        "ap@beta.com;boss@beta.com",
        "en",
        "America/New_York",
    )
    assert (c3.phone, c3.email, c3.language, c3.timezone) == (None, None, "de", "Europe/Berlin")
    created = events(engine, "customer.created")
    assert [e.customer_id for e in created] == sorted(c.id for c in got.values())
    assert created[0].data["account"] in {"C1", "C2", "C3"}
    runs = import_runs(engine)
    assert [(r.kind, r.file_name, r.counts["created"]) for r in runs] == [("customers", "c.csv", 3)]
    assert len(runs[0].file_sha256) == 64


def test_columns_in_any_order_and_all_columns(engine: Engine, tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.csv",
        "payment_terms_days,group,segment,phone,email,timezone,language,insurer_buyer_id,duns,"
        "vat,siren,country,name,account\n"
        "45,Groupe Atlas,retail,+34 612 345 678,a@b.es,Atlantic/Canary,ca,EH1,123456789,"
        'ESB12345678,,es,"Comercial, S.L.",E1\n',
    )
    import_csv("customers", path, engine)
    e1 = customers(engine)["E1"]
    assert (e1.name, e1.country, e1.language, e1.timezone, e1.phone) == (
        "Comercial, S.L.",
        "ES",
        "ca",
        "Atlantic/Canary",
        "+34612345678",
    )
    assert (e1.group, e1.segment, e1.payment_terms_days, e1.duns, e1.vat, e1.siren) == (
        "Groupe Atlas",
        "retail",
        45,
        "123456789",
        "ESB12345678",
        None,
    )


def test_reimport_changes_nothing(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path / "c.csv", CUSTOMERS)
    import_csv("customers", path, engine)
    before = dump(engine)
    for _ in range(2):
        report = import_csv("customers", path, engine)
        assert (report.created, report.updated, report.unchanged) == (0, 0, 3)
        assert dump(engine) == before  # same rows, same updated_at, no new events
    assert len(import_runs(engine)) == 3


def test_update_records_changes_and_keeps_absent_columns(engine: Engine, tmp_path: Path) -> None:
    import_csv("customers", write(tmp_path / "c.csv", CUSTOMERS), engine)
    old = customers(engine)
    path = write(
        tmp_path / "c2.csv",
        "account,name,country,segment\nC1,Alpha SAS,FR,retail\nC2,Beta Inc.,US,\n",
    )
    report = import_csv("customers", path, engine)
    assert (report.created, report.updated, report.unchanged) == (0, 1, 1)
    new = customers(engine)
    assert new["C1"].segment == "retail"
    assert new["C1"].phone == "+33123456789"  # the phone column is absent: kept
    assert new["C1"].updated_at > old["C1"].updated_at
    assert new["C2"].updated_at == old["C2"].updated_at
    (updated,) = events(engine, "customer.updated")
    assert updated.customer_id == new["C1"].id
    assert updated.data["changes"] == {"segment": {"old": None, "new": "retail"}}


def test_empty_cell_clears_and_defaults_follow_country(engine: Engine, tmp_path: Path) -> None:
    import_csv("customers", write(tmp_path / "c.csv", CUSTOMERS), engine)
    path = write(tmp_path / "c2.csv", "account,name,country,phone,language\nC1,Alpha SAS,BE,,\n")
    import_csv("customers", path, engine)
    c1 = customers(engine)["C1"]
    assert (c1.country, c1.phone, c1.language, c1.timezone) == ("BE", None, "nl", "Europe/Paris")
    (updated,) = events(engine, "customer.updated")
    assert updated.data["changes"] == {
        "country": {"old": "FR", "new": "BE"},
        "phone": {"old": "+33123456789", "new": None},
        "language": {"old": "fr", "new": "nl"},
    }


def test_invalid_phone_names_the_line_and_writes_nothing(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path / "c.csv", CUSTOMERS + "C4,Delta Ltd,GB,12345,\n")
    with pytest.raises(ImportFailed) as failed:
        import_csv("customers", path, engine)
    assert failed.value.errors == [f"{path}:5: phone: invalid phone number '12345' for country GB"]
    assert count(engine, Customer) == 0
    assert count(engine, TimelineEvent) == 0
    assert import_runs(engine) == []


def test_duplicate_account_in_file(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path / "c.csv", CUSTOMERS + "C2,Again,US,,\n")
    with pytest.raises(ImportFailed) as failed:
        import_csv("customers", path, engine)
    assert failed.value.errors == [f"{path}:5: account: duplicate account 'C2' (first on line 3)"]


def test_small_batches_give_the_same_result(engine: Engine, tmp_path: Path) -> None:
    rows = "".join(f"K{i},Name {i},FR,06 12 34 56 {i % 100:02d},\n" for i in range(23))
    path = write(tmp_path / "c.csv", "account,name,country,phone,email\n" + rows)
    report = import_csv("customers", path, engine, batch_size=5)
    assert report.created == 23
    again = import_csv("customers", path, engine, batch_size=4)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 23)
    assert count(engine, TimelineEvent) == 23


def test_owner_column_names_a_collector(
    engine: Engine, tmp_path: Path, cheap_password_hashing: None
) -> None:
    from cobro.db import transaction
    from cobro.models import Task
    from cobro.queues.tasks import new_task
    from cobro.users import create_user

    create_user(engine, "maria", "correct horse battery", "collector")
    create_user(engine, "luc", "correct horse battery", "collector")
    create_user(engine, "vic", "correct horse battery", "viewer")
    header = "account,name,country,owner\n"
    good = write(tmp_path / "c.csv", header + "O1,One,FR,maria\nO2,Two,FR,\n")
    assert import_csv("customers", good, engine).created == 2
    got = customers(engine)
    assert (got["O1"].owner, got["O2"].owner) == ("maria", None)

    before = dump(engine)
    bad = write(tmp_path / "bad.csv", header + "O1,One,FR,mario\nO3,Three,FR,vic\nO4,Four,FR,luc\n")
    with pytest.raises(ImportFailed) as failed:
        import_csv("customers", bad, engine)
    assert failed.value.errors == [
        f"{bad}:2: owner: no user 'mario' (did you mean `maria`?)",
        f"{bad}:3: owner: user 'vic' is a viewer: work goes to collector, credit_manager, admin"
        " users",
    ]
    assert dump(engine) == before, "nothing written"

    # a new owner by import: the customer's open task waiting in the queue follows
    with transaction(engine) as s:
        s.add(new_task(s, got["O2"].id, "call", "call them", "collector"))
    moved = write(tmp_path / "m.csv", header + "O1,One,FR,\nO2,Two,FR,luc\n")
    assert import_csv("customers", moved, engine).updated == 2
    got = customers(engine)
    assert (got["O1"].owner, got["O2"].owner) == (None, "luc")
    with Session(engine) as s:
        assert s.scalar(select(Task.assignee)) == "luc"
    assert events(engine, "customer.updated")[-1].data["changes"]["owner"] == {
        "old": None,
        "new": "luc",
    }
