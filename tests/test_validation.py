"""The shared hyperparameter checks: what passes, and the message of what does not."""

import math

import pytest

from sb3_natgrad.common.validation import check_bool, check_choice, check_int, check_number, check_rate


@pytest.mark.parametrize("value", [0.0, 0.5, 1.0, 1])
def test_check_number_accepts_the_closed_interval(value):
    check_number("Algo", "x", value, 0.0, 1.0)


@pytest.mark.parametrize(
    "value, kwargs, message",
    [
        (0.0, dict(low_open=True), "x must be a finite number > 0.0 and <= 1.0, got 0.0"),
        (1.0, dict(high_open=True), "x must be a finite number >= 0.0 and < 1.0, got 1.0"),
        (-0.1, {}, "got -0.1"),
        (math.nan, {}, "got nan"),
        (math.inf, {}, "got inf"),
        (True, {}, "got True"),
        ("0.5", {}, "got '0.5'"),
        (None, {}, "got None"),
    ],
)
def test_check_number_names_the_value(value, kwargs, message):
    with pytest.raises(ValueError, match="^Algo: " + ".*" + message.replace("(", r"\(").replace(".", r"\.")):
        check_number("Algo", "x", value, 0.0, 1.0, **kwargs)


def test_none_only_when_allowed():
    check_number("Algo", "x", None, 0.0, allow_none=True)
    check_int("Algo", "n", None, allow_none=True)
    with pytest.raises(ValueError, match="Algo: n must be an integer >= 1, got None"):
        check_int("Algo", "n", None)


@pytest.mark.parametrize("value", [0, 1.5, True, "2"])
def test_check_int_refuses(value):
    with pytest.raises(ValueError, match=f"Algo: n must be an integer >= 1, got {value!r}"):
        check_int("Algo", "n", value)


def test_check_int_lower_bound():
    check_int("Algo", "n", 0, low=0)
    with pytest.raises(ValueError, match="n must be an integer >= 2, got 1"):
        check_int("Algo", "n", 1, low=2)


def test_check_rate_accepts_schedules_and_positive_numbers():
    check_rate("Algo", "learning_rate", lambda progress: 1e-3 * progress)
    check_rate("Algo", "learning_rate", 3e-4)
    with pytest.raises(ValueError, match=r"Algo: learning_rate must be a finite number > 0\.0, got 0"):
        check_rate("Algo", "learning_rate", 0)


def test_check_choice_and_bool():
    check_choice("Algo", "mode", "a", ("a", "b"))
    with pytest.raises(ValueError, match=r"Algo: mode must be one of \['a', 'b'\], got 'c'"):
        check_choice("Algo", "mode", "c", ("a", "b"))
    check_bool("Algo", "flag", False)
    with pytest.raises(ValueError, match="Algo: flag must be a bool, got 1"):
        check_bool("Algo", "flag", 1)
