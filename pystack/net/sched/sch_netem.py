"""netem, the network emulator qdisc, as net/sched/sch_netem.c, on one direction of a wire.

Read first: net/sched/sch_netem.c (netem_enqueue, get_crandom, loss_gilb_ell, tabledist,
packet_time_ns), the tc-netem(8) man page, then pystack/world.py (`Port.transmit`, the wire's
heap) which drives it.

In Linux netem is the root qdisc of an interface's egress; here it sits on one direction of a
link (`link.a_to_b`, `link.b_to_a`), which is the same thing for the frames that direction
carries. `Netem.enqueue(frame, now)` decides, in netem_enqueue's order, what becomes of one
frame and returns the copies to deliver with their `time_to_send`:

1. duplicate: with probability `duplicate` the frame counts twice; the clone passes through
   netem again with duplication off (so it may be lost, corrupted and delayed on its own) and
   is enqueued first, as `rootq->enqueue(skb2)` does;
2. loss: random (`loss`, with `loss_correlation`) or a Gilbert-Elliott model
   (`loss_model=("gemodel", p, r, 1-h, 1-k)`, tc-netem's parameters: p good→bad, r bad→good,
   1-h loss in the bad state, 1-k loss in the good state; defaults r = 1-p, 1-h = 1, 1-k = 0);
3. corruption: with probability `corrupt` one random bit of one random byte of the frame is
   flipped (`skb->data[get_random_u32_below(skb_headlen)] ^= 1 << get_random_u32_below(8)`);
   checksums on the receiving host must catch it;
4. limit: a frame arriving while `limit` frames wait in this direction is dropped (`drops`);
5. time_to_send: `delay` ± `jitter` (uniform, or `distribution="normal"`; `delay_correlation`
   as get_crandom), unless reordering picks it: with `reorder` set, once `gap - 1` frames have
   been delayed, each frame is, with probability `reorder`, sent at once (counter reset), so it
   overtakes the delayed ones ("reorder 25% gap 5"); with `rate` (bits per second) the frame
   also waits for the previous one to leave (the last frame's time_to_send is the reference,
   as netem does) plus its own serialisation time `len * 8 / rate`.

Frames are ordered by time_to_send (netem's tfifo is an rbtree by time): jitter larger than the
spacing of frames reorders them, as on Linux. All draws come from one generator per direction,
derived from the network's seed (netem's `q->prng` when a seed is given).

Correlation follows get_crandom: `u = v * (1 - rho) + last * rho` (which, as on Linux, also
narrows the distribution; tc-netem documents the same caveat).
"""

from __future__ import annotations

import random
from statistics import NormalDist
from typing import Any, Final

from ...drivers.net.nic import wire_bytes, wire_copy
from ...lib.compiled import mypyc_attr

__all__ = ["Netem", "CRandom"]

_NORMAL: Final = NormalDist()
# netem's distribution tables (iproute2's normal.dist) cover about ±4 standard deviations.
_NORMAL_CLIP: Final = 4.0


class CRandom:
    """struct crndstate: a uniform variate in [0, 1) correlated with the previous one."""

    __slots__ = ("rho", "last")

    def __init__(self, rho: float, rng: random.Random):
        self.rho = rho
        self.last = rng.random()

    def next(self, rng: random.Random) -> float:
        value = rng.random()
        if not self.rho:
            return value
        self.last = value * (1.0 - self.rho) + self.last * self.rho
        return self.last


_KNOBS: Final = ("delay", "jitter", "delay_correlation", "distribution", "loss", "loss_correlation",
          "loss_model", "duplicate", "duplicate_correlation", "reorder", "reorder_correlation",
          "gap", "corrupt", "corrupt_correlation", "rate", "limit")

_FLAG_KNOBS: Final = frozenset(("delay", "jitter", "rate", "loss", "loss_model", "duplicate",
                         "corrupt"))

GOOD_STATE: Final = 1
BAD_STATE: Final = 2


@mypyc_attr(native_class=False)
class Netem:
    """The netem qdisc of one link direction. Attributes are its parameters (settable one by
    one, or several at once, validated, with `set`) and its counters."""

    # Flags the wire reads per frame, kept current by __setattr__ when a knob changes:
    # `idle` (nothing to do: deliver at once) and `needs_clock` (frames wait).
    idle = True
    needs_clock = False

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name in _FLAG_KNOBS:
            d = self.__dict__
            timed = bool(d.get("delay") or d.get("jitter") or d.get("rate"))
            object.__setattr__(self, "needs_clock", timed)
            object.__setattr__(self, "idle", not (
                timed or d.get("loss") or d.get("loss_model") is not None
                or d.get("duplicate") or d.get("corrupt")))

    def __init__(self, rng: random.Random | None = None):
        self.rng = rng if rng is not None else random.Random(0)
        self.delay = 0.0          # seconds
        self.jitter = 0.0         # seconds
        self.delay_correlation = 0.0
        self.distribution = "uniform"
        self.loss = 0.0           # probability
        self.loss_correlation = 0.0
        self.loss_model: tuple[Any, ...] | None = None
        self.duplicate = 0.0
        self.duplicate_correlation = 0.0
        self.reorder = 0.0
        self.reorder_correlation = 0.0
        self.gap = 0
        self.corrupt = 0.0
        self.corrupt_correlation = 0.0
        self.rate = 0.0           # bits per second; 0 = unlimited
        self.limit = 1000         # frames waiting in this direction (netem's default)
        # state
        self.qlen = 0             # frames waiting (netem's t_len)
        self.counter = 0          # frames delayed since the last reordered one
        self.t_last = 0.0         # time_to_send of the last frame queued (rate's reference)
        self.ge_state = GOOD_STATE
        self._cor: dict[str, CRandom] = {}
        # counters (tc -s qdisc show: sent, dropped; and netem's own)
        self.sent = 0             # frames handed to netem
        self.lost = 0             # dropped by the loss model
        self.drops = 0            # dropped by the queue limit
        self.duplicated = 0
        self.corrupted = 0
        self.reordered = 0

    # -- configuration --------------------------------------------------------------------------
    def set(self, **knobs: Any) -> "Netem":
        """Change some parameters (the others are kept): delay, jitter, delay_correlation,
        distribution ('uniform'/'normal'), loss, loss_correlation, loss_model
        (None or ('gemodel', p[, r[, 1-h[, 1-k]]])), duplicate, duplicate_correlation,
        reorder, reorder_correlation, gap, corrupt, corrupt_correlation, rate (bit/s), limit.
        Values are checked before any is applied."""
        unknown = [k for k in knobs if k not in _KNOBS]
        if unknown:
            raise TypeError(f"unknown netem parameter(s): {', '.join(unknown)}")
        new = {k: getattr(self, k) for k in _KNOBS}
        new.update({k: v for k, v in knobs.items() if v is not None or k == "loss_model"})
        _check(new)
        if "reorder" in knobs and knobs["reorder"] and not new["gap"]:
            new["gap"] = 1        # tc: "reorder P" without gap means gap 1
        if "gap" in knobs and knobs["gap"] and "reorder" not in knobs and not new["reorder"]:
            new["reorder"] = 1.0  # netem_change: a gap alone reorders every gap-th frame
        for k in _KNOBS:
            setattr(self, k, new[k])
        if new["loss_model"] is not None:
            self.loss_model = _gemodel(new["loss_model"])
        self._cor.clear()
        return self

    def check(self) -> None:
        _check({k: getattr(self, k) for k in _KNOBS})

    def stats(self) -> dict[str, int]:
        return {"sent": self.sent, "lost": self.lost, "dropped": self.drops,
                "duplicated": self.duplicated, "corrupted": self.corrupted,
                "reordered": self.reordered, "backlog": self.qlen}

    def __repr__(self) -> str:
        parts = [f"{k}={getattr(self, k)!r}" for k in _KNOBS
                 if getattr(self, k) not in (0, 0.0, None, "uniform") and k != "limit"]
        return f"<netem limit {self.limit} {' '.join(parts)}>"

    # -- the qdisc ------------------------------------------------------------------------------
    def _crandom(self, name: str, rho: float) -> float:
        if not rho:
            return self.rng.random()
        state = self._cor.get(name)
        if state is None or state.rho != rho:
            state = self._cor[name] = CRandom(rho, self.rng)
        return state.next(self.rng)

    def loss_event(self) -> bool:
        model = self.loss_model
        if model is not None:
            # loss_gilb_ell: the transition is drawn, then the loss in the state it left.
            _name, p, r, bad_loss, good_loss = model
            rng = self.rng
            if self.ge_state == GOOD_STATE:
                if rng.random() < p:
                    self.ge_state = BAD_STATE
                return good_loss > 0 and rng.random() < good_loss
            if rng.random() < r:
                self.ge_state = GOOD_STATE
            return bad_loss > 0 and rng.random() < bad_loss
        return bool(self.loss) and self._crandom("loss", self.loss_correlation) < self.loss

    def enqueue(self, frame: bytearray, now: float,
                duplicate: bool = True) -> tuple[list[tuple[float, bytearray]], str | None]:
        """netem_enqueue for one frame at `now`: the copies to deliver with their times, and
        the reason if the frame itself was dropped ('lost' or 'limit')."""
        self.sent += 1
        count = 1
        if duplicate and self.duplicate and \
                self._crandom("duplicate", self.duplicate_correlation) < self.duplicate:
            count += 1
        if self.loss_event():
            count -= 1
        out: list[tuple[float, bytearray]] = []
        if count == 0:
            self.lost += 1
            return out, "lost"
        if count > 1:
            self.duplicated += 1
            clone, _reason = self.enqueue(wire_copy(frame), now, duplicate=False)
            out.extend(clone)
        if self.corrupt and self._crandom("corrupt", self.corrupt_correlation) < self.corrupt:
            self.corrupted += 1
            # The sending NIC wrote its checksum before the frame met the fault: the
            # receiver's check must see the flipped bit (see drivers/net/nic.py, WireFrame).
            wire_bytes(frame)
            frame[self.rng.randrange(len(frame))] ^= 1 << self.rng.randrange(8)
        if self.qlen >= self.limit:
            self.drops += 1
            return out, "limit"
        if not self.gap or self.counter < self.gap - 1 or \
                self.reorder < self._crandom("reorder", self.reorder_correlation):
            delay = self.delay
            if self.jitter:
                delay = self._tabledist()
            if self.rate:
                last = self.t_last
                if self.qlen and last > now:
                    # "Last packet in queue is reference point (now)": subtract its head start.
                    delay = max(0.0, delay - (last - now))
                    now = last
                delay += len(frame) * 8.0 / self.rate
            when = now + delay
            self.counter += 1
            if when > self.t_last or not self.qlen:
                self.t_last = when
        else:
            # Re-ordering: this frame goes to the head of the queue and is sent now.
            when = now
            self.counter = 0
            self.reordered += 1
        self.qlen += 1
        out.append((when, frame))
        return out, None

    def dequeue_done(self) -> None:
        """A frame this direction queued has left it (delivered, or its link went away)."""
        self.qlen -= 1

    def _tabledist(self) -> float:
        mu, sigma = self.delay, self.jitter
        u = self._crandom("delay", self.delay_correlation)
        if self.distribution == "uniform":
            # tabledist without a table: ((rnd % (2 * sigma)) + mu) - sigma
            value = mu + (2.0 * u - 1.0) * sigma
        else:
            z = _NORMAL.inv_cdf(min(max(u, 1e-12), 1 - 1e-12))
            z = max(-_NORMAL_CLIP, min(_NORMAL_CLIP, z))
            value = mu + z * sigma
        return max(0.0, value)  # netem: "if (delay < 0) delay = 0" via the time reference


def _prob(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} is a probability in [0, 1], got {value!r}")


def _check(p: dict[str, Any]) -> None:
    for name in ("delay", "jitter"):
        if not isinstance(p[name], (int, float)) or p[name] < 0:
            raise ValueError(f"{name} must be >= 0 seconds, got {p[name]!r}")
    for name in ("loss", "duplicate", "reorder", "corrupt", "delay_correlation",
                 "loss_correlation", "duplicate_correlation", "reorder_correlation",
                 "corrupt_correlation"):
        _prob(name, p[name])
    if p["distribution"] not in ("uniform", "normal"):
        raise ValueError(f"distribution is 'uniform' or 'normal', got {p['distribution']!r}")
    if not isinstance(p["rate"], (int, float)) or p["rate"] < 0:
        raise ValueError(f"rate is in bits per second, >= 0 (0: unlimited), got {p['rate']!r}")
    for name in ("gap", "limit"):
        if not isinstance(p[name], int) or isinstance(p[name], bool) or p[name] < 0:
            raise ValueError(f"{name} is a count of frames >= 0, got {p[name]!r}")
    if p["loss_model"] is not None:
        _gemodel(p["loss_model"])


def _gemodel(model: Any) -> tuple[str, float, float, float, float]:
    """('gemodel', p[, r[, 1-h[, 1-k]]]) with tc-netem's defaults filled in."""
    if not isinstance(model, (tuple, list)) or not model or model[0] != "gemodel" \
            or not 2 <= len(model) <= 5:
        raise ValueError("loss_model is ('gemodel', p, r, 1-h, 1-k) (r, 1-h, 1-k optional), "
                         f"got {model!r}")
    p = model[1]
    rest = list(model[2:]) + [None] * (5 - len(model))
    r = 1.0 - p if rest[0] is None else rest[0]
    bad = 1.0 if rest[1] is None else rest[1]
    good = 0.0 if rest[2] is None else rest[2]
    for name, v in (("p", p), ("r", r), ("1-h", bad), ("1-k", good)):
        _prob(f"gemodel {name}", v)
    return ("gemodel", float(p), float(r), float(bad), float(good))
