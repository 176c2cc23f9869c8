"""Simulated time: a scenario's hours played faster than the wall clock, with device timestamps consistent.

The simulated timeline is anchored so that it *ends* at the wall-clock moment the scenario finishes: at
60× a 24 h storm starts 23.6 h in the past and arrives at the present as it ends. Device timestamps
therefore never run ahead of the hub's clock (which rejects readings from the future), and a run can
carry on in real time afterwards without a jump.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class SimClock:
    sim_start: datetime  # simulated time at wall_start
    wall_start: datetime
    speed: float  # simulated seconds per wall second while the scenario plays
    duration: timedelta  # the scenario's length; afterwards time runs at 1×

    @classmethod
    def anchored(cls, wall_now: datetime, speed: float, duration: timedelta) -> SimClock:
        """A clock whose scenario ends exactly when the wall clock reaches the end of the accelerated run."""
        if speed < 1:
            raise ValueError("speed must be at least 1 (time can be accelerated, not slowed)")
        return cls(wall_now - duration + duration / speed, wall_now, speed, duration)

    @property
    def wall_end(self) -> datetime:
        """When the scenario's last simulated moment is reached on the wall clock."""
        return self.wall_start + self.duration / self.speed

    @property
    def sim_end(self) -> datetime:
        return self.sim_start + self.duration

    def sim_at(self, wall: datetime) -> datetime:
        if wall < self.wall_end:
            # Clamped: microsecond rounding, multiplied by the speed, must not overshoot the end.
            return min(self.sim_start + (wall - self.wall_start) * self.speed, self.sim_end)
        return self.sim_end + (wall - self.wall_end)

    def wall_at(self, sim: datetime) -> datetime:
        if sim <= self.sim_end:
            return self.wall_start + (sim - self.sim_start) / self.speed
        return self.wall_end + (sim - self.sim_end)

    def hours_into(self, sim: datetime) -> float:
        """Scenario hours at a simulated time (the unit scenarios are written in)."""
        return (sim - self.sim_start).total_seconds() / 3600.0
