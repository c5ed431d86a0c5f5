"""Time grids: the exact frame rate of timestamps that came from a fixed grid.

``1 / median step`` of float timestamps is off in the last digits
(9.999999999999858 for a 10 Hz grid, 25.000000000000533 for 25 Hz). Rates
are stored with models and predictors and compared across files, so they are
taken as the simplest fraction of a second within 1 us of the median step
(timestamps are kept to the microsecond).

>>> exact_rate(0.1 + 1e-15), exact_rate(0.333333), exact_rate(0.04 - 2e-17)
(10.0, 3.0, 25.0)
"""

from __future__ import annotations

from fractions import Fraction


def exact_rate(step: float) -> float:
    """Frames per second of a grid with this step (s): ``1 / step`` for the simplest fraction within 1 us."""
    if not step > 0:
        raise ValueError(f"a time step must be > 0, got {step}")
    for limit in (10, 100, 1000, 10**4, 10**5, 10**6):
        exact = Fraction(step).limit_denominator(limit)
        if exact > 0 and abs(float(exact) - step) <= 1e-6:
            return float(1 / exact)
    return 1.0 / step
