"""How long to wait before trying a failed page again.

Exponential backoff with *full* jitter (a uniformly random wait between zero and the
exponential ceiling): when a table throttles, every worker of every client reading it
is told no at once, and full jitter spreads their next attempts the most for the least
total wait.

Attempts are counted as HTTP requests, including the ones botocore made inside a
``client.scan`` call (its ``RetryAttempts``). So a client left at botocore's defaults
and this policy do not multiply: the scan gives up once ``max_attempts`` requests for
one page have failed, whoever made them.
"""

from __future__ import annotations

__all__ = ["RetryPolicy"]

import math
import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of throttling, 5xx and dropped connections, per page.

    ``max_attempts`` is the most requests one page may take (``1`` disables retries);
    the *n*-th retry waits ``uniform(0, min(cap, base * 2**n))`` seconds.
    """

    max_attempts: int = 10
    base: float = 0.05
    cap: float = 5.0
    _random: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise TypeError("RetryPolicy.max_attempts must be an int")
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be >= 1")
        for name in ("base", "cap"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"RetryPolicy.{name} must be a number")
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"RetryPolicy.{name} must be finite and >= 0")

    def delay(self, retry: int) -> float:
        """The wait before retry number ``retry`` (0 for the first retry)."""
        ceiling = min(self.cap, self.base * 2.0 ** min(retry, 62))
        return self._random.uniform(0.0, ceiling)
