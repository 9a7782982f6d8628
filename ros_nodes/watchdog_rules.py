"""The watchdog's rules, without ROS: what the arm may do given how fresh its inputs are and what
the robot says about itself. The node (`watchdog_node`) feeds it messages and obeys its verdicts;
keeping the rules here lets every case be driven with a fake clock, fast and exactly.

Two clocks are injected. The steady clock times arrivals (immune to wall-clock jumps: the primary
check); the stamp clock (ROS time, the clock messages are stamped on) judges stamps, which catches
a frozen camera re-sending an old frame or a command delayed on the way. Every `check` gives a
`Decision`, the worst verdict that applies and every reason for it:

* OK: all inputs fresh, the robot moving or idle, nothing latched; the arm may follow the planner.
* HOLD: an input is missing, stale or stamped from the future, the planner's heartbeat stopped,
  the running plan's last command is too old, the robot is guiding/recovering/in an unknown mode,
  or a fresh plan is required. Clears by itself once the reasons do.
* RECOVER: `robot_mode` REFLEX or a `current_errors` flag arrived. Given once per fault (the node
  calls error recovery then); while the fault lasts the verdict is HOLD, and once the robot reports
  no fault a fresh plan is required: the plan running when the robot got well again is never
  resumed, a heartbeat must name another one.
* LATCHED_STOP: `robot_mode` USER_STOPPED was seen. Latched, even after the robot returns to IDLE,
  until an operator clears it (refused while the robot is still user-stopped); then, as after a
  recovery, a fresh plan is required.

Latches are set when the state arrives, not at the check, so a fault shorter than a check period
is not missed.
"""
from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass, fields

HOLD_BUDGET_S = 0.25  # an input past its limit must be held on within this (issue 14)

# franka_msgs/FrankaRobotState robot_mode values (franka_ros2 v3.4.0; the node's tests check them).
ROBOT_MODE_OTHER, IDLE, MOVE, GUIDING, REFLEX, USER_STOPPED, AUTOMATIC_ERROR_RECOVERY = range(7)
MODE_NAMES = ("OTHER", "IDLE", "MOVE", "GUIDING", "REFLEX", "USER_STOPPED", "AUTOMATIC_ERROR_RECOVERY")
MAY_MOVE = (IDLE, MOVE)


@dataclass(frozen=True)
class WatchdogLimits:
    max_image_age_s: float = 0.2  # a camera frame arrived longer ago than this, or stamped (plus skew) earlier, is stale
    max_state_age_s: float = 0.1  # the same for robot state (franka publishes it at 1 kHz)
    heartbeat_timeout_s: float = 0.5  # the planner is dead when no heartbeat arrived in this time
    max_command_age_s: float = 0.5  # while a plan runs, its last command may be this old (since arrival or stamp + skew)
    check_period_s: float = 0.02  # seconds between checks (steady clock); at most HOLD_BUDGET_S / 2
    clock_skew_s: float = 0.05  # stamps may differ this much from our clock (transport, clock sync between hosts)

    def __post_init__(self):
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ValueError(f"{field.name} must be a positive finite number of seconds, got {value!r}")
        # An input can go stale just after a check and the next check can start up to a period late
        # (another callback ran first): detection takes up to two periods, the rest of the budget is
        # for publishing the hold and its delivery.
        if 2 * self.check_period_s > HOLD_BUDGET_S:
            raise ValueError(f"check_period_s must be at most {HOLD_BUDGET_S / 2} s so that detection and the hold "
                             f"fit in {HOLD_BUDGET_S} s, got {self.check_period_s}")


class Verdict(enum.IntEnum):
    """Ordered by severity: a decision is the worst verdict any rule gives."""

    OK = 0
    HOLD = 1
    RECOVER = 2
    LATCHED_STOP = 3


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reasons: tuple[str, ...]  # every reason not to move, worst first, each "subject: detail" (empty for OK)
    fresh_plan_required: bool  # after a recovery or a cleared user stop, until a heartbeat names a new plan

    @property
    def hold(self) -> bool:
        """Whether the arm must not follow the planner now (every verdict but OK)."""
        return self.verdict is not Verdict.OK

    @property
    def subjects(self) -> tuple[str, ...]:
        """What the reasons are about, without their numbers (ages count up on every check)."""
        return tuple(reason.partition(": ")[0] for reason in self.reasons)

    def summary(self) -> str:
        return self.verdict.name + (": " + "; ".join(self.reasons) if self.reasons else "")


@dataclass(frozen=True)
class _Arrival:
    received: float  # steady clock, seconds
    stamp: float | None  # stamp clock, seconds (None: the message has no stamp)


class Watchdog:
    """The state machine. Feed it every message (`image`, `robot_state`, `heartbeat`, `command`),
    call `check` every `limits.check_period_s`, and `clear_user_stop` for the operator."""

    def __init__(self, limits: WatchdogLimits, steady: Callable[[], float], stamp_clock: Callable[[], float]):
        self.limits = limits
        self._steady, self._stamp_clock = steady, stamp_clock
        self._image: _Arrival | None = None
        self._state: _Arrival | None = None
        self._mode = ROBOT_MODE_OTHER
        self._errors: tuple[str, ...] = ()
        self._heartbeat: _Arrival | None = None
        self._plan = ""  # the plan the latest heartbeat names ("" idle)
        self._plan_started = 0.0  # steady time the first heartbeat naming it arrived
        self._command: _Arrival | None = None
        self._fault: str | None = None  # the fault the robot reports now (None: none)
        self._recover_for: str | None = None  # a fault not yet answered with RECOVER (None: none due)
        self._user_stop: str | None = None  # the latched stop's reason (None: not latched)
        self._stale_plan: str | None = None  # a fresh plan is required: any plan but this one (None: not required)

    # --- inputs ----------------------------------------------------------------------------------
    def image(self, stamp: float) -> None:
        self._image = _Arrival(self._steady(), stamp)

    def robot_state(self, stamp: float, mode: int, errors: tuple[str, ...]) -> None:
        """`errors`: the names of the `current_errors` flags that are set."""
        self._state = _Arrival(self._steady(), stamp)
        self._mode, self._errors = mode, tuple(errors)
        if mode == USER_STOPPED and self._user_stop is None:
            self._user_stop = "user stop: latched (robot_mode USER_STOPPED); an operator must clear it"
        fault = _fault(mode, self._errors)
        if fault is not None and self._fault is None and self._recover_for is None:
            self._recover_for = fault
        if fault is None and self._fault is not None:
            self._require_fresh_plan()
        self._fault = fault

    def heartbeat(self, plan: str) -> None:
        """A planner heartbeat naming the plan it is executing ("" when idle)."""
        now = self._steady()
        self._heartbeat = _Arrival(now, None)
        if plan != self._plan:
            self._plan, self._plan_started = plan, now
        if self._stale_plan is not None and plan and plan != self._stale_plan:
            self._stale_plan = None

    def command(self, stamp: float) -> None:
        self._command = _Arrival(self._steady(), stamp)

    def clear_user_stop(self) -> str | None:
        """The operator's clear: None if done, else why it is refused."""
        if self._user_stop is None:
            return "no user stop is latched"
        if self._mode == USER_STOPPED:
            return "the robot still reports USER_STOPPED; release the stop first"
        self._user_stop = None
        self._require_fresh_plan()
        return None

    def _require_fresh_plan(self) -> None:
        self._stale_plan = self._plan

    # --- the verdict -----------------------------------------------------------------------------
    def check(self) -> Decision:
        reasons: list[tuple[Verdict, str]] = []
        if self._user_stop is not None:
            reasons.append((Verdict.LATCHED_STOP, self._user_stop))
        if self._recover_for is not None and self._user_stop is None:
            reasons.append((Verdict.RECOVER, f"robot fault: {self._recover_for}; calling error recovery"))
            self._recover_for = None
        elif self._fault is not None:
            reasons.append((Verdict.HOLD, f"robot fault: {self._fault}; waiting for the robot to recover"))
        elif self._mode not in MAY_MOVE and self._mode != USER_STOPPED and self._state is not None:
            reasons.append((Verdict.HOLD, f"robot mode: {_mode_name(self._mode)}"))
        if self._stale_plan is not None:
            reasons.append((Verdict.HOLD, "fresh plan: required (a heartbeat must name a plan other than "
                                          f"{self._stale_plan!r})"))
        now, stamp_now = self._steady(), self._stamp_clock()
        limits = self.limits
        for problem in (
            _staleness("camera frame", self._image, limits.max_image_age_s, now, stamp_now, limits.clock_skew_s),
            _staleness("robot state", self._state, limits.max_state_age_s, now, stamp_now, limits.clock_skew_s),
            _staleness("planner heartbeat", self._heartbeat, limits.heartbeat_timeout_s, now, stamp_now,
                       limits.clock_skew_s),
            self._command_problem(now, stamp_now),
        ):
            if problem is not None:
                reasons.append((Verdict.HOLD, problem))
        verdict = max((verdict for verdict, _ in reasons), default=Verdict.OK)
        ordered = tuple(reason for _, reason in sorted(reasons, key=lambda item: -item[0]))
        return Decision(verdict, ordered, self._stale_plan is not None)

    def _command_problem(self, now: float, stamp_now: float) -> str | None:
        """While a plan runs: its last command (or, before the first, its start) must be recent."""
        if not self._plan:
            return None
        command = self._command if self._command is not None and self._command.received >= self._plan_started else None
        if command is None:
            since = now - self._plan_started
            if since > self.limits.max_command_age_s:
                return f"command: none in {since:.3f} s of plan {self._plan!r} (limit {self.limits.max_command_age_s} s)"
            return None
        return _staleness("command", command, self.limits.max_command_age_s, now, stamp_now, self.limits.clock_skew_s)


def _fault(mode: int, errors: tuple[str, ...]) -> str | None:
    if mode != REFLEX and not errors:
        return None
    parts = (["robot_mode REFLEX"] if mode == REFLEX else []) + ([f"current_errors {', '.join(errors)}"] if errors else [])
    return "; ".join(parts)


def _mode_name(mode: int) -> str:
    return MODE_NAMES[mode] if 0 <= mode < len(MODE_NAMES) else f"unknown ({mode})"


def _staleness(what: str, arrival: _Arrival | None, limit: float, now: float, stamp_now: float,
               skew: float) -> str | None:
    if arrival is None:
        return f"{what}: none yet"
    age = now - arrival.received
    if age > limit:
        return f"{what}: arrived {age:.3f} s ago (limit {limit} s)"
    if arrival.stamp is None:
        return None
    stamp_age = stamp_now - arrival.stamp
    if stamp_age > limit + skew:
        return f"{what}: stamped {stamp_age:.3f} s ago (limit {limit} s + {skew} s skew)"
    if stamp_age < -skew:
        return f"{what}: stamped {-stamp_age:.3f} s in the future (tolerance {skew} s)"
    return None
