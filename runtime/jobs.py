"""Background jobs: what `metacrm jobs run` runs once, from cron every few minutes.

Each job is a plain function `job(runtime) -> {counter: n}` that is safe to run again at
once and alongside another copy of itself (see each job's module for how). Engines add
their job with one line below.
"""
from __future__ import annotations

from typing import Callable

from .catalog import Runtime
from .office import reminders
from .pool import recycle

Job = Callable[[Runtime], dict[str, int]]

#: name → job, in the order they run.
JOBS: dict[str, Job] = {
    "pool_recycling": recycle.run,
    "schedule_reminders": reminders.run,
}


def run_jobs(rt: Runtime, names: list[str] | None = None) -> dict[str, dict[str, int]]:
    """Run the named jobs (all when None) once; each job's counters, by name."""
    unknown = [n for n in names or () if n not in JOBS]
    if unknown:
        raise KeyError(", ".join(unknown))
    return {name: job(rt) for name, job in JOBS.items() if names is None or name in names}
