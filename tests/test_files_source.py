"""The files source: good rows load, bad rows are reported with file:line and skipped."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from connectors.csv_text import BLOCK_BYTES
from connectors.errors import SourceError
from connectors.files import FilesSource
from connectors.normalize import Normalizer
from connectors.report import SyncReport
from connectors.sync import run_sync
from kpi.models import Channel, Deal, DealStatus, DealType, Partner, StageChange, SurveyResponse
from kpi.store import Store
from settings.app import AppConfig
from tests.csv_folder import DEAL_HEADER, PARTNER_HEADER, STAGE_HEADER, minimal_folder, write_folder

APP = AppConfig(currency="USD", currency_rates={"EUR": 1.5}, channel_map={"Podcast": "owned"})


def sync(store: Store, folder: Path, app: AppConfig = APP) -> SyncReport:
    return run_sync(store, FilesSource(folder, Normalizer(app)))


def deals_by_id(store: Store) -> dict[str, Deal]:
    return {deal.id: deal for deal in store.records(Deal)}


def test_good_rows_load_with_every_field(store: Store, tmp_path: Path) -> None:
    report = sync(store, minimal_folder(tmp_path))
    assert report.problems == []
    acme, globex = store.records(Partner)
    assert acme == Partner(
        id="p1",
        name="Acme Corp",
        tier="Gold",
        joined_on=date(2024, 1, 15),
        owner_email="ann@example.com",
        contact_emails=("a@acme.example", "b@acme.example"),
    )
    assert globex.left_on == date(2026, 6, 30) and globex.contact_emails == ()
    deals = deals_by_id(store)
    assert deals["d1"].status is DealStatus.WON and deals["d1"].type is DealType.NEW
    assert deals["d1"].registered is True and deals["d1"].csat == 5
    assert deals["d3"].partner_id is None and deals["d3"].closed_on is None
    assert deals["d3"].expected_close_on == date(2026, 12, 1)
    changes = store.records(StageChange)
    assert {c.entered_at for c in changes} == {
        datetime(2026, 1, 1, 9, tzinfo=UTC),
        datetime(2026, 2, 1, 9, tzinfo=UTC),  # +01:00 converted to UTC
    }


def test_amounts_are_converted_and_originals_kept(store: Store, tmp_path: Path) -> None:
    sync(store, minimal_folder(tmp_path))
    euro = deals_by_id(store)["d2"]
    assert euro.amount == Decimal("150") and euro.original_amount == Decimal("100")
    assert euro.currency == "EUR"
    direct = deals_by_id(store)["d3"]
    assert direct.amount == Decimal("50") and direct.currency is None  # empty = rate 1


def test_an_unknown_currency_makes_the_amount_empty_and_warns(store: Store, tmp_path: Path) -> None:
    folder = minimal_folder(tmp_path)
    write_folder(
        folder,
        deals=f"""{DEAL_HEADER}
            d1,p1,Swiss,1000,CHF,Closed Won,won,2026-01-01,2026-02-01,,,,,,,
            d2,p1,Swiss 2,10,chf,Closed Won,won,2026-01-01,2026-02-01,,,,,,,""",
    )
    report = sync(store, folder)
    deal = deals_by_id(store)["d1"]
    assert deal.amount is None and deal.original_amount == Decimal("1000")
    assert any("2 amount(s) in CHF have no rate" in w for w in report.warnings)
    assert report.problems == []


def test_channel_from_lead_source_when_the_cell_is_empty(store: Store, tmp_path: Path) -> None:
    folder = minimal_folder(tmp_path)
    write_folder(
        folder,
        deals=f"""{DEAL_HEADER}
            d1,p1,a,1,,x,open,2026-01-01,,,,Paid Search,,,,
            d2,p1,b,1,,x,open,2026-01-01,,,,  partner REFERRAL ,,,,
            d3,p1,c,1,,x,open,2026-01-01,,,,Podcast,,,,
            d4,p1,d,1,,x,open,2026-01-01,,,,Carrier pigeon,,,,
            d5,p1,e,1,,x,open,2026-01-01,,,,,,,,
            d6,p1,f,1,,x,open,2026-01-01,,,,Paid Search,earned,,,""",
    )
    sync(store, folder)
    channels = {deal.id: deal.channel for deal in store.records(Deal)}
    assert channels == {
        "d1": Channel.PAID,
        "d2": Channel.EARNED,
        "d3": Channel.OWNED,  # from app.yaml's channel_map
        "d4": Channel.OTHER,  # unmapped
        "d5": Channel.OTHER,  # empty
        "d6": Channel.EARNED,  # a non-empty channel cell wins
    }


def test_bad_rows_are_reported_with_file_and_line_and_the_rest_loads(
    store: Store, tmp_path: Path
) -> None:
    folder = minimal_folder(tmp_path)
    (folder / "deals.csv").write_text(
        DEAL_HEADER
        + "\n"
        + "\n".join(
            [
                "ok1,p1,fine,10,,s,won,2026-01-01,2026-01-02,,,,,,,",  # line 2
                "bad1,p1,amount,ten,,s,won,2026-01-01,2026-01-02,,,,,,,",  # 3
                "bad2,p1,status,1,,s,pending,2026-01-01,,,,,,,,",  # 4
                "bad3,p1,no close,1,,s,lost,2026-01-01,,,,,,,,",  # 5
                "bad4,p1,date,1,,s,open,2026-13-01,,,,,,,,",  # 6
                "bad5,p1,cells,1,,s,open,2026-01-01",  # 7
                'bad6,p1,"multi',  # 8: a quoted cell over two lines ends on line 9
                'line",1,,s,open,2026-01-01,,,,,,maybe,,',  # 9 (registered)
                "bad7,p1,csat,1,,s,won,2026-01-01,2026-01-02,,,,,,,6",  # 10
                "ok1,p1,again,10,,s,won,2026-01-01,2026-01-02,,,,,,,",  # 11: repeated id
                ",p1,no id,1,,s,open,2026-01-01,,,,,,,,",  # 12
                "bad8,p1,type,1,,s,open,2026-01-01,,,cross-sell,,,,,",  # 13
                "bad9,p1,channel,1,,s,open,2026-01-01,,,,,tv,,,",  # 14
                "ok2,p1,fine too,20,,s,lost,2026-01-01,2026-01-03,,,,,,,",  # 15
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    report = sync(store, folder)
    assert set(deals_by_id(store)) == {"ok1", "ok2"}
    assert deals_by_id(store)["ok1"].name == "fine"  # the first row with an id wins
    assert report.problems == [
        "deals.csv:3: amount 'ten' is not a number",
        "deals.csv:4: status 'pending' is not one of open, won, lost",
        "deals.csv:5: closed_on is empty",
        "deals.csv:6: created_on '2026-13-01' is not a date (YYYY-MM-DD)",
        "deals.csv:7: has 8 cells, the header has 16",
        "deals.csv:9: registered 'maybe' is not true or false",
        "deals.csv:10: csat '6' is not a whole number from 1 to 5",
        "deals.csv:11: repeats the id 'ok1' of an earlier row",
        "deals.csv:12: id is empty",
        "deals.csv:13: type 'cross-sell' is not one of new, upsell, renewal",
        "deals.csv:14: channel 'tv' is not one of paid, earned, owned, other",
    ]
    deals = report.objects["deals"]
    assert (deals.new, deals.skipped) == (2, 11)
    assert deals.skip_reasons["amount is not a number"] == 1
    assert deals.skip_reasons["repeated id"] == 1


def test_bom_column_order_and_extra_columns(store: Store, tmp_path: Path) -> None:
    folder = minimal_folder(tmp_path)
    (folder / "partners.csv").write_text(
        "\ufeffname,joined_on,id,favourite_colour\nAcme Corp,2024-01-15,p1,teal\n",
        encoding="utf-8",
    )
    report = sync(store, folder)
    assert report.problems == []
    assert [(p.id, p.name, p.region) for p in store.records(Partner)] == [("p1", "Acme Corp", None)]


def test_an_optional_region_column_is_read(store: Store, tmp_path: Path) -> None:
    folder = minimal_folder(tmp_path)
    (folder / "partners.csv").write_text(
        "id,name,joined_on,region\np1,Acme Corp,2024-01-15,EMEA\np2,Globex,2025-03-01,\n",
        encoding="utf-8",
    )
    assert sync(store, folder).problems == []
    assert {p.id: p.region for p in store.records(Partner)} == {"p1": "EMEA", "p2": None}


def test_unknown_references_are_kept_and_counted(store: Store, tmp_path: Path) -> None:
    folder = minimal_folder(tmp_path)
    write_folder(
        folder,
        stage_changes=f"""{STAGE_HEADER}
            ghost,Prospecting,2026-01-01T00:00:00""",
        survey_responses="""partner_id,respondent,campaign_id,score,comment,submitted_at
            nobody,x@y.example,c1,9,,2026-01-01T00:00:00""",
    )
    report = sync(store, folder)
    assert len(store.records(StageChange)) == 1
    assert len(store.records(SurveyResponse)) == 1
    assert "1 stage change(s) name an unknown deal; they are kept" in report.warnings
    assert "1 survey answer(s) name an unknown partner; they are kept" in report.warnings


def test_survey_scores_and_timestamps(store: Store, tmp_path: Path) -> None:
    folder = minimal_folder(tmp_path)
    write_folder(
        folder,
        survey_responses="""partner_id,respondent,campaign_id,score,comment,submitted_at
            p1,a@acme.example,c1,10,great,2026-03-01T12:00:00
            p1,b@acme.example,c1,11,,2026-03-01T12:00:00
            p1,b@acme.example,c1,7.5,,2026-03-01T12:00:00
            p1,,c1,0,,2026-03-02T08:00:00-05:00""",
    )
    report = sync(store, folder)
    assert report.problems == [
        "survey_responses.csv:3: score '11' is not a whole number from 0 to 10",
        "survey_responses.csv:4: score '7.5' is not a whole number from 0 to 10",
    ]
    answers = sorted(store.records(SurveyResponse), key=lambda r: r.submitted_at)
    assert [a.score for a in answers] == [10, 0]
    assert answers[0].submitted_at == datetime(2026, 3, 1, 12, tzinfo=UTC)  # no offset = UTC
    assert answers[1].submitted_at == datetime(2026, 3, 2, 13, tzinfo=UTC)


def test_a_missing_required_file_or_column_changes_nothing(store: Store, tmp_path: Path) -> None:
    folder = minimal_folder(tmp_path)
    sync(store, folder)
    (folder / "stage_changes.csv").unlink()
    with pytest.raises(SourceError, match=r"stage_changes\.csv: missing"):
        sync(store, folder)
    minimal_folder(folder)
    (folder / "deals.csv").write_text("id,partner_id,created_on\n", encoding="utf-8")
    with pytest.raises(SourceError, match=r"deals\.csv: the header lacks the column\(s\) status"):
        sync(store, folder)
    assert len(store.records(Deal)) == 3  # the last good data stays
    assert store.last_sync(status=None).status == "failed"  # type: ignore[union-attr]
    assert store.last_sync().status == "ok"  # type: ignore[union-attr]


def test_a_missing_folder_says_what_to_do(store: Store, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"no such folder; set files\.path in app\.yaml"):
        sync(store, tmp_path / "nowhere")


def test_header_only_partners_file_loads_nothing_without_error(
    store: Store, tmp_path: Path
) -> None:
    folder = write_folder(
        tmp_path, partners=PARTNER_HEADER, deals=DEAL_HEADER, stage_changes=STAGE_HEADER
    )
    report = sync(store, folder)
    assert report.problems == [] and store.counts()["partners"] == 0


def test_a_cp1252_export_loads_with_files_encoding_and_is_one_sentence_without(
    store: Store, tmp_path: Path
) -> None:
    folder = minimal_folder(tmp_path)
    data = f"{PARTNER_HEADER}\np1,Café Müller GmbH,Gold,2024-01-15,,,\n".encode("cp1252")
    (folder / "partners.csv").write_bytes(data)
    with pytest.raises(SourceError) as error:
        sync(store, folder)
    assert data.index(b"\xe9") == 64
    assert str(error.value) == (
        "partners.csv line 2 is not utf-8 text (byte 0xE9 at offset 64); set files.encoding "
        "in app.yaml to the file's encoding (cp1252 for most Excel exports) or export it as "
        "UTF-8 CSV."
    )
    assert store.counts()["partners"] == 0
    report = run_sync(store, FilesSource(folder, Normalizer(APP), encoding="cp1252"))
    assert report.problems == []
    assert [p.name for p in store.records(Partner)] == ["Café Müller GmbH"]


@pytest.mark.parametrize("fault", [b"\xe9", b"\0"])
def test_a_fault_past_the_first_block_names_its_line_and_offset(
    store: Store, tmp_path: Path, fault: bytes
) -> None:
    """UTF-8 files are decoded a block at a time; a fault further on is still told by line."""
    folder = minimal_folder(tmp_path)
    good = "".join(f"p{n},Partner {n},Gold,2024-01-15,,,\n" for n in range(40_000))
    data = f"{PARTNER_HEADER}\n{good}".encode() + b"px,Caf" + fault + b",,2024-01-15,,,\n"
    assert len(data) > BLOCK_BYTES
    (folder / "partners.csv").write_bytes(data)
    with pytest.raises(SourceError) as error:
        sync(store, folder)
    at = f"line 40002 is {{}} (byte 0xE9 at offset {data.index(fault):,})"
    if fault == b"\0":
        at = f"line 40002 is binary data, not CSV text (a NUL byte at offset {data.index(fault):,})"
    assert at.format("not utf-8 text") in str(error.value)


def test_binary_data_in_a_file_is_one_sentence(store: Store, tmp_path: Path) -> None:
    folder = minimal_folder(tmp_path)
    with (folder / "deals.csv").open("ab") as handle:
        handle.write(b"\x00\x01\x02 trailing junk\n")
    with pytest.raises(SourceError, match=r"^deals\.csv line 5 is binary data, not CSV text"):
        sync(store, folder)
    with pytest.raises(SourceError, match=r"line 5 is binary data"):
        run_sync(store, FilesSource(folder, Normalizer(APP), encoding="cp1252"))
