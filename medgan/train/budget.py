"""A wall-clock budget, planned: how many steps each phase gets in ``--time-budget`` seconds.

Stopping a loop when the clock runs out leaves a run that was laid out for another length:
its learning-rate schedule never anneals, and a task with phases (f-AnoGAN: a GAN, then an
encoder) can stop inside the first and export an untrained encoder. So the engine measures
first and plans (:meth:`medgan.train.engine.Trainer.plan_budget`): it times a few steps of
every phase on copies of the networks, and :func:`plan_steps` scales every phase by one
factor so that the run fills the budget. Each phase keeps its share of the time the run's
nominal plan (``--steps``, the task's split) would take, and at least one step, so every
network a task exports is trained. The schedule is then laid over the planned steps, and the
plan is written into the run's config (``loop.plan``), so a resumed run continues it.

A plan from a few probed steps can be off by a fifth on a busy host, and a shared host's
pace drifts during a run (90-second runs planned a tenth in ended anywhere from 65 to 94
seconds), so the engine lays the rest of the run out again from the pace it really kept:
at :data:`REPLAN_AT` of each phase (the first a tenth in, where a schedule barely moves: a
cosine is at 0.98 of its rate), at the end of each phase, and when the budget runs out
before the last phase (which then starts at once). A run resumed from a checkpoint taken
before such a revision follows the revised plan from there.

``--steps`` given with a budget is a cap: the plan never exceeds it. Without ``--steps`` the
budget alone decides the length, with the task's default split of :data:`NOMINAL_STEPS`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["NOMINAL_STEPS", "REPLAN_AT", "SAFETY", "Plan", "plan_steps"]

#: the run's length when neither ``--steps`` nor ``--time-budget`` is given; with a budget
#: alone it only sets the phases' proportions.
NOMINAL_STEPS = 4000
#: the share of the remaining budget the plan fills: the rest absorbs a host that slows down.
SAFETY = 0.93
#: the shares of a phase (of its planned steps at the time) after which the rest of the run
#: is laid out again from the pace kept so far; later revisions move a schedule less and less.
REPLAN_AT = (0.1, 0.35, 0.65, 0.9)


def plan_steps(nominal: list[int], seconds: list[float], available: float, cap: bool) -> tuple[list[int], float]:
    """Steps per phase that fill ``available`` seconds, every phase scaled by one factor.

    Args:
        nominal: each phase's steps in the run's nominal plan (their proportions are kept).
        seconds: each phase's measured seconds per step, its share of periodic work included.
        available: seconds the phases may take in all.
        cap: ``nominal`` is what the user asked for: never plan more.

    Returns:
        ``(steps, scale)``: at least one step for every phase with nominal steps, and the
        factor the budget allows (below ``1 / nominal`` for some phase: it cannot reach it).
    """
    if len(nominal) != len(seconds) or not nominal:
        raise ValueError("one measured cost per phase is needed")
    total = sum(n * s for n, s in zip(nominal, seconds))
    scale = max(available, 0.0) / total if total > 0 else math.inf
    used = min(scale, 1.0) if cap else scale
    steps = [max(1, math.floor(n * used)) if n > 0 else 0 for n in nominal]
    return steps, scale


@dataclass
class Plan:
    """What the budget reaches and what the run was laid out over (``loop.plan`` of the config).

    Attributes:
        budget: the wall-clock budget, seconds.
        phases: the phases' names, in order.
        seconds_per_step: measured per phase, periodic samples and checkpoints included.
        asked: each phase's steps in the nominal plan.
        steps: each phase's planned steps.
        scale: the factor the budget allows over ``asked`` (see :func:`plan_steps`).
        capped: ``asked`` came from ``--steps`` and is a cap.
        revisions: the run laid out again over the time left (the step, the seconds elapsed,
            the host's pace against the measurement, the new steps per phase).
    """

    budget: float
    phases: list[str]
    seconds_per_step: list[float]
    asked: list[int]
    steps: list[int]
    scale: float
    capped: bool
    revisions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def short(self) -> bool:
        """Some phase gets more steps than the budget reaches (at least one each)."""
        return any(n > 0 and n * self.scale < 1 for n in self.asked)

    @property
    def expected_seconds(self) -> float:
        return sum(n * s for n, s in zip(self.steps, self.seconds_per_step))

    def _steps(self, counts: list[float]) -> str:
        if len(self.phases) == 1:
            return f"{counts[0]:.0f}"
        return " + ".join(f"{name} {n:.0f}" for name, n in zip(self.phases, counts))

    def describe(self) -> str:
        """One line for the user: what was measured and what the run is laid out over."""
        per_step = ", ".join(f"{s:.3g} s" for s in self.seconds_per_step)
        head = f"time budget {self.budget:g} s: measured {per_step} per step"
        if self.short:
            reach = [n * self.scale for n in self.asked]
            reached = " + ".join(f"{name} {r:.1f}" for name, r in zip(self.phases, reach)) if len(self.phases) > 1 else f"{reach[0]:.1f}"
            return (f"{head}; the budget cannot reach every phase (it reaches {reached} steps): each trains at least "
                    f"one step, {self._steps(self.steps)}, about {self.expected_seconds:.0f} s")
        if self.capped and self.scale >= 1:
            return f"{head}; the {self._steps(self.asked)} steps asked for fit in it (about {self.expected_seconds:.0f} s)"
        return f"{head}; the run is laid out over {self._steps(self.steps)} steps (learning-rate schedule included)"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["scale"] = round(self.scale, 6) if math.isfinite(self.scale) else None
        out["seconds_per_step"] = [round(s, 6) for s in self.seconds_per_step]
        return out
