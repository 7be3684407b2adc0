"""The one place that prices paid requests and reserves money before they are sent.

Every paid request (`3dInference`, `removeBackground`, `caption`, any later paid task type) reserves its worst-case
price first: the last price Runware reported for that task type and model, else the documented default
below, times the number of results. A reservation that would cross a limit (the session's Spending Limit,
a batch's Cost Limit, `--max-cost`) is refused with a sentence naming that limit. The reservation becomes
the reported cost when Runware reports one; it stays counted when a sent request fails on our side (Runware
may have billed it), and is released only when the request was certainly not billed (never sent, or refused
by the API before any task was created). Amounts are kept in micro-dollars, so limits have exact edges.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

from .errors import Code, Sam3dError

MICRO = 1_000_000
# Documented defaults, USD per result: Runware's examples show 0.0038 for a SAM 3D task and for a RemBG
# background removal; its caption models' pages show 0.0019 (runware:152@2) and 0.0026 (runware:152@1), the
# higher held for any caption model. Used until Runware reports a price for that task type and model.
DEFAULT_PRICES = {("3dInference", "meta:sam@3d"): 0.0038, ("removeBackground", ""): 0.0038, ("caption", ""): 0.0026}
FALLBACK_PRICE = 0.01  # a task type or model we know no price for: a cautious guess, until Runware reports one
# A 4xx answer refuses the request itself (a key, credit, a parameter): no task exists, nothing was billed.
# Except these: a conflict means an earlier send of the same task got through; the others are transient.
SENT_ANYWAY = {Code.CONFLICT_TASK_UUID, Code.RATE_LIMIT_EXCEEDED, Code.TIMEOUT}
# What one result of a paid task can cost, USD. A reported price outside this (negative, NaN, infinite, a
# hundredth of a cent or less, a hundred dollars or more) cannot be right: it is treated as unknown, so the
# worst-case estimate stays (never learnt as the next reservation's price, never settled as the cost).
MIN_PRICE = 0.0001
MAX_PRICE = 100.0


def checked(value: object, results: int = 1) -> float | None:
    """A reported cost of `results` results (a server's answer, the journal, its index), when it can be right;
    else None. The one check every price passes before it reaches the ledger, the journal's totals or an
    object's `sam3d_cost`."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        usd_value = float(value)
    except (ValueError, OverflowError):
        return None
    results = max(1, int(results))
    if not math.isfinite(usd_value) or not MIN_PRICE * results <= usd_value <= MAX_PRICE * results:
        return None
    return usd_value


def refused_before_billing(error: Sam3dError) -> bool:
    """Whether the API's answer says the request never became a task (so its money goes back)."""
    return error.status is not None and 400 <= error.status < 500 and error.code not in SENT_ANYWAY


def micro(usd: float) -> int:
    return round(usd * MICRO)


def usd(amount: int) -> float:
    return amount / MICRO


class Limit:
    """A cap on what a set of requests may cost (0: none). Its name is what the refusal tells the user."""

    def __init__(self, name: str, usd_limit: float = 0.0) -> None:
        self.name = name
        self.limit = 0
        self.set(usd_limit)
        self.committed = 0  # settled costs plus open reservations, micro-dollars

    def set(self, usd_limit: float) -> None:
        """0 or infinite: no limit. A limit that cannot be meant (negative, NaN) refuses every paid request."""
        if usd_limit == math.inf:
            usd_limit = 0.0
        self.limit = micro(usd_limit) if math.isfinite(usd_limit) and usd_limit >= 0 else 1


@dataclass
class Reservation:
    """Money set aside for one paid request; `settle` or `release` it exactly once."""

    ledger: Ledger
    task_type: str
    model: str
    results: int
    amount: int  # micro-dollars held against every limit
    limits: list[Limit] = field(default_factory=list)
    settled: bool = False

    def settle(self, reported_usd: float | None, results: int = 0) -> None:
        """The request was sent: hold Runware's reported cost instead of the estimate (the estimate stays when it
        reported none), and learn the price per result for the next reservation."""
        self.ledger.settle(self, reported_usd, results)

    def release(self) -> None:
        """Nothing was billed (never sent, or refused before a task existed): give the money back."""
        self.ledger.release(self)


class Ledger:
    """Prices learnt from Runware and the reservations against limits. Thread-safe: workers settle."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._prices: dict[tuple[str, str], int] = {}
        self.spent = 0  # settled this session, micro-dollars
        self.reserved = 0  # open reservations, micro-dollars
        self.unreported: dict[str, int] = {}  # of `spent`, by task type: kept at the estimate, no price reported

    def price(self, task_type: str, model: str, floor: float = 0.0) -> int:
        """Worst-case price of one result, micro-dollars: the documented default, or more when Runware has
        reported more. A learnt price never lowers it: prices are also learnt from the shared result folder's
        journal, which anyone with write access to the folder can plant. `floor`: the least a caller knows it can
        cost (an engine's worst case: its model id is a preference, so a newer one has no default here)."""
        with self._lock:
            known = self._prices.get((task_type, model), 0)
        default = DEFAULT_PRICES.get((task_type, model), DEFAULT_PRICES.get((task_type, "")))
        return max(known, micro(FALLBACK_PRICE if default is None else default), micro(floor))

    def learn(self, task_type: str, model: str, per_result_usd: float) -> None:
        """The price of one result for the next reservations, when it can be right (`checked`)."""
        price = checked(per_result_usd)
        if price is not None:
            with self._lock:
                self._prices[(task_type, model)] = micro(price)

    def estimate(self, task_type: str, model: str, results: int = 1, floor: float = 0.0) -> float:
        return usd(self.price(task_type, model, floor) * results)

    def reserve(self, task_type: str, model: str, results: int, limits: list[Limit],
                floor: float = 0.0) -> Reservation:
        """Hold the worst case of `results` results against every limit, or refuse with the limit's name."""
        amount = self.price(task_type, model, floor) * max(1, results)
        with self._lock:
            for limit in limits:
                if limit.limit and limit.committed + amount > limit.limit:
                    raise Sam3dError(Code.SPENDING_LIMIT, refusal(limit, amount))
            for limit in limits:
                limit.committed += amount
            self.reserved += amount
        return Reservation(self, task_type, model, results, amount, list(limits))

    def settle(self, reservation: Reservation, reported_usd: float | None, results: int) -> None:
        if reported_usd is not None:  # a cost that cannot be right is no report: the estimate stays
            reported_usd = checked(reported_usd, results) if results else None
        if reported_usd is not None:
            self.learn(reservation.task_type, reservation.model, reported_usd / results)
        with self._lock:
            if reservation.settled:
                return
            reservation.settled = True
            final = micro(reported_usd) if reported_usd is not None else reservation.amount
            for limit in reservation.limits:
                limit.committed += final - reservation.amount
            self.reserved -= reservation.amount
            self.spent += final
            if reported_usd is None:
                kind = reservation.task_type
                self.unreported[kind] = self.unreported.get(kind, 0) + final

    def release(self, reservation: Reservation) -> None:
        with self._lock:
            if reservation.settled:
                return
            reservation.settled = True
            for limit in reservation.limits:
                limit.committed -= reservation.amount
            self.reserved -= reservation.amount


def refusal(limit: Limit, amount: int) -> str:
    return (f"This needs up to ${usd(amount):.4f} more, and ${usd(limit.committed):.4f} is already spent or "
            f"reserved: that would cross {limit.name} (${usd(limit.limit):.4f}). Raise the limit to go on.")
