"""The Grafana macro and variable expander, against Grafana's documented behaviour (pure, no services)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashboards import (
    TimeRange,
    VariableValue,
    auto_interval,
    expand_macros,
    format_duration,
    parse_duration,
    render_sql,
    substitute_variables,
)
from mimamori.errors import ValidationError

JST = timezone(timedelta(hours=9))
RANGE = TimeRange(datetime(2024, 9, 1, 9, 0, tzinfo=JST), datetime(2024, 9, 2, 9, 0, 0, 500000, tzinfo=JST))


def test_time_filter_is_between_utc_rfc3339_instants():
    assert expand_macros("WHERE $__timeFilter(r.time)", RANGE, timescaledb=False) == (
        "WHERE r.time BETWEEN '2024-09-01T00:00:00Z' AND '2024-09-02T00:00:00.5Z'"
    )


def test_time_from_and_to_are_quoted_literals():
    assert expand_macros("$__timeFrom() $__timeTo()", RANGE, timescaledb=False) == (
        "'2024-09-01T00:00:00Z' '2024-09-02T00:00:00.5Z'"
    )


def test_time_group_is_epoch_arithmetic_in_plain_mode_and_time_bucket_on_timescaledb():
    assert expand_macros("$__timeGroup(time, 10m)", RANGE, timescaledb=False) == (
        "floor(extract(epoch from time)/600)*600"
    )
    assert expand_macros("$__timeGroup(time, '1h')", RANGE, timescaledb=True) == "time_bucket('3600.000s',time)"


def test_time_group_alias_names_the_column_time():
    assert expand_macros("SELECT $__timeGroupAlias(r.time, 5m) FROM x", RANGE, timescaledb=False) == (
        'SELECT floor(extract(epoch from r.time)/300)*300 AS "time" FROM x'
    )


def test_time_group_followed_by_a_comma_gets_the_alias_as_grafana_does_for_old_dashboards():
    assert expand_macros("SELECT $__timeGroup(t, 1m), v", RANGE, timescaledb=False) == (
        'SELECT floor(extract(epoch from t)/60)*60 AS "time", v'
    )


def test_unknown_macros_and_bad_intervals_are_errors():
    with pytest.raises(ValidationError, match="unknown Grafana macro"):
        expand_macros("$__nope(x)", RANGE, timescaledb=False)
    with pytest.raises(ValidationError, match="not a Grafana interval"):
        expand_macros("$__timeGroup(t, soon)", RANGE, timescaledb=False)


def test_multi_value_variables_are_quoted_and_joined():
    sql = substitute_variables("IN ($gauge)", {"gauge": VariableValue(("a", "b'c"))}, timedelta(minutes=1))
    assert sql == "IN ('a','b''c')"


def test_single_value_variables_go_in_bare_with_quotes_doubled():
    value = VariableValue(("it's",), multi=False)
    assert substitute_variables("x = '$v'", {"v": value}, timedelta(minutes=1)) == "x = 'it''s'"
    assert substitute_variables("${v:raw} [[v]]", {"v": value}, timedelta(minutes=1)) == "it's it''s"


def test_interval_builtins_and_unknown_names_are_left_for_the_macros():
    sql = substitute_variables(
        "$__timeGroupAlias(t, $__interval) $__interval_ms $__timeFilter(t) $nobody", {}, timedelta(minutes=2)
    )
    assert sql == "$__timeGroupAlias(t, 2m) 120000 $__timeFilter(t) $nobody"


@pytest.mark.parametrize(
    ("hours", "points", "expected"),
    [(24, 1000, "1m"), (6, 1000, "20s"), (24 * 7, 1000, "10m"), (24 * 30, 1000, "30m"), (1, 1000, "5s")],
)
def test_auto_interval_rounds_like_grafana(hours, points, expected):
    start = datetime(2024, 1, 1, tzinfo=UTC)
    assert format_duration(auto_interval(TimeRange(start, start + timedelta(hours=hours)), points)) == expected


def test_durations_round_trip():
    for text in ("500ms", "30s", "10m", "1h", "1d", "1w"):
        assert format_duration(parse_duration(text)) == (text if text != "1w" else "7d")


def test_a_range_must_be_aware_and_forward():
    with pytest.raises(ValidationError):
        TimeRange(datetime(2024, 1, 2), datetime(2024, 1, 3))
    with pytest.raises(ValidationError):
        TimeRange(RANGE.end, RANGE.start)


def test_render_sql_substitutes_variables_before_the_macros():
    sql = render_sql(
        "SELECT $__timeGroupAlias(time, $__interval) FROM r WHERE id IN ($d) AND $__timeFilter(time)",
        RANGE,
        variables={"d": VariableValue(("x",))},
        interval=timedelta(minutes=5),
        timescaledb=False,
    )
    assert sql == (
        "SELECT floor(extract(epoch from time)/300)*300 AS \"time\" FROM r WHERE id IN ('x')"
        " AND time BETWEEN '2024-09-01T00:00:00Z' AND '2024-09-02T00:00:00.5Z'"
    )


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")), min_size=1))
def test_quoted_values_never_leave_their_literal(values):
    # Parsed back from the SQL text, the literals are exactly the values: no value can close its quote early.
    sql = substitute_variables("$v", {"v": VariableValue(tuple(values))}, timedelta(minutes=1))
    parsed, i = [], 0
    while i < len(sql):
        assert sql[i] == "'"
        j, buf = i + 1, []
        while True:
            if sql[j] == "'" and sql[j + 1 : j + 2] == "'":
                buf.append("'")
                j += 2
            elif sql[j] == "'":
                break
            else:
                buf.append(sql[j])
                j += 1
        parsed.append("".join(buf))
        i = j + 1
        if i < len(sql):
            assert sql[i] == ","
            i += 1
    assert parsed == values
