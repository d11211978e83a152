import pytest

from sluice import parse_duration


@pytest.mark.parametrize(("value", "ms"), [
    (0, 0), (1, 1000), (2.5, 2500), (0.0004, 0),
    ("500ms", 500), ("30s", 30_000), ("10m", 600_000), ("1h", 3_600_000), ("1d", 86_400_000),
    ("1w", 604_800_000), ("1.5h", 5_400_000), ("1h30m", 5_400_000), (" 2m 5s ", 125_000), ("10M", 600_000),
])
def test_durations_parse_to_milliseconds(value: object, ms: int) -> None:
    assert parse_duration(value) == ms


@pytest.mark.parametrize("value", [
    "", "10", "10x", "m", "-5s", "1.2.3s", "ten minutes", "5 s", -1, float("nan"), float("inf"),
    True, None, [1], "999999w",
])
def test_bad_durations_raise_a_value_error_naming_the_value(value: object) -> None:
    with pytest.raises(ValueError, match="bad timeout") as info:
        parse_duration(value, "timeout")
    assert repr(value) in str(info.value)
