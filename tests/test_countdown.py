"""The countdown's words and clock (pure): what `count to n` and `stop` mean, and where
a countdown goes on after a restart."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tallyboard.bots.countdown import CountTo, Invalid, Stop, parse, resume
from tallyboard.bots.state import Countdown


def test_commands() -> None:
    assert parse("count to 5") == CountTo(5)
    assert parse("  Count  TO 9999 ") == CountTo(9999)
    assert parse("count to 1") == CountTo(1)
    assert parse("stop") == Stop() == parse("STOP ")
    for text in ("hello", "count", "count to", "stop it", "count to 5 please", ""):
        assert parse(text) is None, text
    for text, word in (("count to 0", "from 1 to 9,999"), ("count to 10000", "not 10,000"),
                       ("count to -3", "not -3"), ("count to five", "not a whole number"),
                       ("count to 2.5", "not a whole number")):
        got = parse(text)
        assert isinstance(got, Invalid) and word in got.reason, (text, got)


def test_resume_examples() -> None:
    c = Countdown("c", None, 20, 1000.0, sent=3)
    assert resume(c, 1003.5).next_tick == 4 and not resume(c, 1003.5).skipped  # quick restart
    assert resume(c, 1004.2).next_tick == 4  # 0.2 s late: still sent
    late = resume(c, 1010.3)  # ticks 4..9 passed more than a second ago
    assert late.next_tick == 10 and list(late.skipped) == [4, 5, 6, 7, 8, 9]
    over = resume(c, 1100.0)
    assert over.next_tick is None and list(over.skipped) == list(range(4, 21))
    done = resume(Countdown("c", None, 5, 1000.0, sent=5), 1003.0)
    assert done.next_tick is None and not done.skipped


@given(target=st.integers(1, 9999), sent=st.integers(0, 9999),
       elapsed=st.floats(0, 20_000, allow_nan=False))
def test_resume_never_repeats_never_reorders(target: int, sent: int, elapsed: float) -> None:
    sent = min(sent, target)
    c = Countdown("c", None, target, 0.0, sent)
    plan = resume(c, elapsed)
    nxt = plan.next_tick
    assert list(plan.skipped) == list(range(sent + 1, (target + 1) if nxt is None else nxt))
    if nxt is not None:
        assert sent < nxt <= target  # nothing sent twice
        assert c.started + nxt >= elapsed - 1  # due at most a second ago
    assert all(c.started + k < elapsed - 1 for k in plan.skipped)  # only what passed
