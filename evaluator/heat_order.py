"""Head-to-head finishing order: who finished a heat ahead of whom, and who won.

An order is a list of car indices (or, in the league, the entries in those seats), best
first. The race engine writes each heat's order as the cars' positions and the evaluation's
order as ``positions`` in the result JSON; the league reads the heat's winner off that order
with :func:`heat_winner` (ratings, knockout matches) and never re-derives it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def heat_order(finish_time_s: Sequence[float | None], distance_m: Sequence[float],
               failed: Sequence[bool]) -> list[int]:
    """Order the cars of one heat, winner first.

    ``finish_time_s[i]`` is car i's race time if it completed the laps (the sum of its lap
    times), else None; ``distance_m[i]`` the metres it covered from its grid slot's origin;
    ``failed[i]`` whether its policy failed. The rule, in the order the code applies it:

    1. cars that completed the laps come first, by finishing time (earlier first);
    2. then the rest: cars still running at the time cap before cars whose policy failed,
       and within each, the car further along the track first;
    3. a tie goes to the lower car index.
    """
    times = {i: t for i, t in enumerate(finish_time_s) if t is not None}
    finishers = sorted(times, key=lambda i: (times[i], i))
    rest = sorted((i for i in range(len(finish_time_s)) if i not in times),
                  key=lambda i: (failed[i], -distance_m[i], i))
    return finishers + rest


def head_to_head_order(failed: Sequence[bool], points: Sequence[int],
                       ranking_time_s: Sequence[float | None]) -> list[int]:
    """Order the cars of a head-to-head evaluation (all its heats), best first.

    ``points[i]`` is the sum of car i's heat positions (lower is better) and
    ``ranking_time_s[i]`` its ranking time (None: not ranked). The rule, in order:

    1. cars whose policy failed come last;
    2. fewer points first;
    3. then the smaller ranking time, cars without one after those with one;
    4. a tie goes to the lower car index.
    """
    def key(i: int) -> tuple[bool, int, float, int]:
        time = ranking_time_s[i]
        return (failed[i], points[i], time if time is not None else float("inf"), i)

    return sorted(range(len(points)), key=key)


def heat_winner(order: Sequence[T]) -> T | None:
    """Return the winner of a heat from its finishing order (best first); None if empty."""
    return order[0] if order else None
