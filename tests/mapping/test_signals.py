"""HeldSignals: Ctrl-C is recorded while held and raised where the code delivers it."""

from __future__ import annotations

import signal

import pytest

from toolkit.signals import HeldSignals


@pytest.fixture(autouse=True)
def _python_ctrl_c():
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_is_held_until_delivered():
    reached = []
    with pytest.raises(KeyboardInterrupt), HeldSignals() as held:
        signal.raise_signal(signal.SIGINT)
        reached.append("after the signal")  # no KeyboardInterrupt in the middle of held code
        held.deliver()
        reached.append("after deliver")
    assert reached == ["after the signal"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_leaving_the_block_delivers_what_was_held():
    with pytest.raises(KeyboardInterrupt), HeldSignals():
        signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_released_lets_ctrl_c_through_and_holds_again_after():
    with HeldSignals() as held:
        with pytest.raises(KeyboardInterrupt), held.released():
            assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
            signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)  # held again
        with pytest.raises(KeyboardInterrupt):
            held.deliver()


def test_ignored_signals_stay_ignored():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with HeldSignals() as held:
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        signal.raise_signal(signal.SIGINT)
        held.deliver()
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
