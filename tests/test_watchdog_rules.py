"""The watchdog's rules with a fake clock: every stale input held on within one check period of its
limit, a robot fault answered with exactly one RECOVER and then a fresh plan required, a user stop
latched until the operator clears it, and settings refused when they cannot keep the 250 ms budget.
"""
from __future__ import annotations

import math

import pytest

from vjepa_wm.ros_nodes.watchdog_rules import (
    AUTOMATIC_ERROR_RECOVERY,
    GUIDING,
    HOLD_BUDGET_S,
    IDLE,
    MOVE,
    REFLEX,
    ROBOT_MODE_OTHER,
    USER_STOPPED,
    Verdict,
    Watchdog,
    WatchdogLimits,
)

LIMITS = WatchdogLimits(max_image_age_s=0.2, max_state_age_s=0.1, heartbeat_timeout_s=0.5, max_command_age_s=0.3,
                        check_period_s=0.02, clock_skew_s=0.05)
INPUTS = ("camera frame", "robot state", "planner heartbeat", "command")
LIMIT_OF = {"camera frame": LIMITS.max_image_age_s, "robot state": LIMITS.max_state_age_s,
            "planner heartbeat": LIMITS.heartbeat_timeout_s, "command": LIMITS.max_command_age_s}


class FakeClocks:
    """A steady clock and a stamp clock that run together (or apart, to model a jump or skew)."""

    def __init__(self):
        self.steady, self.stamp = 100.0, 1.7e9

    def advance(self, seconds: float) -> None:
        self.steady += seconds
        self.stamp += seconds


class Rig:
    """A watchdog and its inputs: `tick` advances one check period, sends every input not
    `silenced` (stamped now, or `frozen` at a fixed stamp) and checks."""

    def __init__(self, limits: WatchdogLimits = LIMITS, plan: str = "plan-1"):
        self.clock = FakeClocks()
        self.dog = Watchdog(limits, lambda: self.clock.steady, lambda: self.clock.stamp)
        self.limits, self.plan, self.mode, self.errors = limits, plan, IDLE, ()
        self.silenced: set[str] = set()
        self.frozen: dict[str, float] = {}
        self.stamp_offset: dict[str, float] = {}

    def send(self) -> None:
        def stamp(name):
            return self.frozen.get(name, self.clock.stamp + self.stamp_offset.get(name, 0.0))

        if "camera frame" not in self.silenced:
            self.dog.image(stamp("camera frame"))
        if "robot state" not in self.silenced:
            self.dog.robot_state(stamp("robot state"), self.mode, self.errors)
        if "planner heartbeat" not in self.silenced:
            self.dog.heartbeat(self.plan)
        if "command" not in self.silenced:
            self.dog.command(stamp("command"))

    def tick(self, seconds: float | None = None):
        self.clock.advance(self.limits.check_period_s if seconds is None else seconds)
        self.send()
        return self.dog.check()

    def settle(self, ticks: int = 5):
        for _ in range(ticks):
            decision = self.tick()
        return decision


def test_with_every_input_fresh_the_arm_may_follow_the_planner():
    rig = Rig()
    decision = rig.settle()
    assert decision.verdict is Verdict.OK and not decision.hold and decision.reasons == ()
    assert not decision.fresh_plan_required and decision.summary() == "OK"
    rig.mode = MOVE
    assert rig.settle().verdict is Verdict.OK


def test_before_the_first_message_of_each_input_it_holds_and_says_which():
    rig = Rig()
    decision = rig.dog.check()
    assert decision.verdict is Verdict.HOLD
    assert set(decision.subjects) == {"camera frame", "robot state", "planner heartbeat"}
    assert all(reason.endswith("none yet") for reason in decision.reasons)
    for name in INPUTS[:3]:
        rig = Rig()
        rig.silenced = {name}
        decision = rig.settle()
        assert decision.verdict is Verdict.HOLD and decision.subjects == (name,), name


@pytest.mark.parametrize("name", INPUTS)
@pytest.mark.parametrize("phase", [0.0, 0.003, 0.011, 0.0199])
def test_an_input_that_stops_arriving_is_held_on_within_one_period_of_its_limit(name, phase):
    rig = Rig()
    rig.settle()
    rig.tick(phase)  # the input's last message, at some point between two checks
    last = rig.clock.steady
    rig.silenced = {name}
    while True:
        decision = rig.tick()
        age = rig.clock.steady - last
        if decision.hold:
            break
        assert age <= LIMIT_OF[name] + 1e-9, f"{name} {age:.3f} s old and not held on"
    assert decision.verdict is Verdict.HOLD and decision.subjects == (name,)
    assert LIMIT_OF[name] < age <= LIMIT_OF[name] + LIMITS.check_period_s + 1e-9
    rig.silenced = set()
    assert rig.tick().verdict is Verdict.OK, "a hold for a stale input clears when it is fresh again"


@pytest.mark.parametrize("name", ["camera frame", "robot state", "command"])
def test_an_input_arriving_with_an_old_stamp_is_held_on_within_one_period_of_limit_plus_skew(name):
    rig = Rig()
    rig.settle()
    rig.frozen[name] = rig.clock.stamp  # a frozen camera, a robot state replayed, a command delayed on the way
    while True:
        decision = rig.tick()
        age = rig.clock.stamp - rig.frozen[name]
        if decision.hold:
            break
        assert age <= LIMIT_OF[name] + LIMITS.clock_skew_s + 1e-9
    assert decision.subjects == (name,) and "stamped" in decision.reasons[0]
    assert age <= LIMIT_OF[name] + LIMITS.clock_skew_s + LIMITS.check_period_s + 1e-9


@pytest.mark.parametrize("name", ["camera frame", "robot state", "command"])
def test_a_stamp_from_the_future_beyond_the_skew_is_held_on_and_one_within_it_is_not(name):
    rig = Rig()
    rig.stamp_offset[name] = LIMITS.clock_skew_s * 0.9
    assert rig.settle().verdict is Verdict.OK
    rig.stamp_offset[name] = LIMITS.clock_skew_s * 1.5
    decision = rig.tick()
    assert decision.subjects == (name,) and "in the future" in decision.reasons[0]


def test_a_wall_clock_jump_does_not_hide_a_stale_input_and_arrival_ages_use_the_steady_clock():
    rig = Rig()
    rig.settle()
    rig.silenced = {"camera frame"}
    rig.clock.stamp -= 3600  # the wall clock is set back an hour: stamps would look young
    rig.frozen = {"robot state": rig.clock.stamp, "command": rig.clock.stamp}
    decision = rig.tick(LIMITS.max_image_age_s + 0.001)
    assert "camera frame" in decision.subjects and decision.hold


def test_command_age_counts_only_while_a_plan_runs_and_from_the_plan_start():
    rig = Rig(plan="")
    rig.silenced = {"command"}
    assert rig.settle(30).verdict is Verdict.OK, "an idle planner sends no commands; nothing to hold"
    rig.dog.command(rig.clock.stamp)  # a command from before the plan: it does not count for the plan
    rig.plan = "plan-2"
    assert rig.tick().verdict is Verdict.OK, "a plan just started has had no time to command"
    started = rig.clock.steady  # its first heartbeat arrived
    while not (decision := rig.tick()).hold:
        assert rig.clock.steady - started <= LIMITS.max_command_age_s + 1e-9
    assert decision.subjects == ("command",) and "plan-2" in decision.reasons[0]
    assert rig.clock.steady - started <= LIMITS.max_command_age_s + LIMITS.check_period_s + 1e-9
    rig.silenced = set()
    assert rig.tick().verdict is Verdict.OK


@pytest.mark.parametrize("fault", ["reflex", "errors", "both"])
def test_a_robot_fault_is_answered_with_one_recover_then_a_fresh_plan_is_required(fault):
    rig = Rig()
    rig.settle()
    rig.mode = REFLEX if fault in ("reflex", "both") else MOVE
    rig.errors = ("joint_reflex", "cartesian_reflex") if fault in ("errors", "both") else ()
    verdicts = [rig.tick() for _ in range(50)]  # a second of the fault
    recovers = [d for d in verdicts if d.verdict is Verdict.RECOVER]
    assert len(recovers) == 1 and verdicts[0].verdict is Verdict.RECOVER
    assert "calling error recovery" in recovers[0].reasons[0]
    if fault != "reflex":
        assert "joint_reflex, cartesian_reflex" in recovers[0].reasons[0]
    assert all(d.verdict is Verdict.HOLD and d.subjects[0] == "robot fault" for d in verdicts[1:])
    rig.mode, rig.errors = IDLE, ()  # recovered
    for _ in range(30):  # the planner keeps naming the plan that was running: not fresh
        decision = rig.tick()
        assert decision.verdict is Verdict.HOLD and decision.subjects == ("fresh plan",)
        assert decision.fresh_plan_required
    rig.plan = ""
    assert rig.tick().fresh_plan_required, "an idle heartbeat is not a plan"
    rig.plan = "plan-2"
    decision = rig.tick()
    assert decision.verdict is Verdict.OK and not decision.fresh_plan_required


def test_a_fault_shorter_than_a_check_period_is_still_answered():
    rig = Rig()
    rig.settle()
    rig.dog.robot_state(rig.clock.stamp, REFLEX, ())
    rig.dog.robot_state(rig.clock.stamp, IDLE, ())
    assert rig.dog.check().verdict is Verdict.RECOVER
    decision = rig.tick()
    assert decision.verdict is Verdict.HOLD and decision.fresh_plan_required


def test_a_second_fault_after_recovering_is_answered_again():
    rig = Rig()
    rig.settle()
    for plan in ("plan-2", "plan-3"):
        rig.mode = REFLEX
        assert [rig.tick().verdict for _ in range(3)] == [Verdict.RECOVER, Verdict.HOLD, Verdict.HOLD]
        rig.mode, rig.plan = IDLE, plan
        rig.tick()  # the state without the fault requires a fresh plan; this heartbeat names one
        assert rig.tick().verdict is Verdict.OK


@pytest.mark.parametrize("mode", [GUIDING, AUTOMATIC_ERROR_RECOVERY, ROBOT_MODE_OTHER, 9])
def test_a_robot_being_guided_recovering_or_in_an_unknown_mode_is_held_on(mode):
    rig = Rig()
    rig.mode = mode
    decision = rig.settle()
    assert decision.verdict is Verdict.HOLD and decision.subjects == ("robot mode",)
    rig.mode = IDLE
    assert rig.tick().verdict is Verdict.OK


def test_a_user_stop_is_latched_across_returning_to_idle_until_the_operator_clears_it():
    rig = Rig()
    rig.settle()
    assert rig.dog.clear_user_stop() == "no user stop is latched"
    rig.mode = USER_STOPPED
    decision = rig.tick()
    assert decision.verdict is Verdict.LATCHED_STOP and decision.subjects == ("user stop",)
    assert "still reports USER_STOPPED" in rig.dog.clear_user_stop()
    rig.mode = IDLE  # the stop is released on the robot: still latched here
    for _ in range(100):
        assert rig.tick().verdict is Verdict.LATCHED_STOP
    assert rig.dog.clear_user_stop() is None
    decision = rig.tick()
    assert decision.verdict is Verdict.HOLD and decision.subjects == ("fresh plan",)
    rig.plan = "plan-2"
    assert rig.tick().verdict is Verdict.OK


def test_a_user_stop_between_two_checks_is_latched_and_outranks_a_fault_whose_recovery_waits_for_the_clear():
    rig = Rig()
    rig.settle()
    rig.dog.robot_state(rig.clock.stamp, USER_STOPPED, ())
    rig.dog.robot_state(rig.clock.stamp, IDLE, ())
    assert rig.dog.check().verdict is Verdict.LATCHED_STOP
    rig.mode = REFLEX
    decision = rig.tick()
    assert decision.verdict is Verdict.LATCHED_STOP and decision.subjects == ("user stop", "robot fault")
    assert rig.dog.clear_user_stop() is None
    assert rig.tick().verdict is Verdict.RECOVER, "the fault is answered once the operator has cleared the stop"
    assert rig.tick().verdict is Verdict.HOLD


def test_reasons_come_worst_first_and_all_are_given():
    rig = Rig()
    rig.settle()
    rig.silenced = {"camera frame"}
    rig.mode = REFLEX
    rig.tick(1.0)
    decision = rig.tick()
    assert decision.subjects == ("robot fault", "camera frame")
    assert decision.summary().startswith("HOLD: robot fault: robot_mode REFLEX; waiting")


@pytest.mark.parametrize("field", ["max_image_age_s", "max_state_age_s", "heartbeat_timeout_s", "max_command_age_s",
                                   "check_period_s", "clock_skew_s"])
@pytest.mark.parametrize("value", [0.0, -0.1, math.nan, math.inf, -math.inf, True, "0.1", None])
def test_limits_that_are_not_a_positive_finite_number_of_seconds_are_refused_when_made(field, value):
    with pytest.raises(ValueError, match=field):
        WatchdogLimits(**{field: value})


def test_a_check_period_that_cannot_fit_detection_and_the_hold_in_the_budget_is_refused():
    assert HOLD_BUDGET_S == 0.25
    assert WatchdogLimits(check_period_s=HOLD_BUDGET_S / 2).check_period_s == 0.125
    with pytest.raises(ValueError, match="check_period_s must be at most 0.125"):
        WatchdogLimits(check_period_s=0.13)
