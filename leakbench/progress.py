"""What a run's stages are doing while they work, and what each cost once done.

A stage (building `tiny`, planting, one unlearning, an attack, an engine's generation, ...) is a
``with stage(label) as current:`` block. It reports its start, its steps as they go
(`Stage.advance`, at most one event a second) and its end: built, taken from the cache or failed,
its wall and CPU seconds and its work (steps, tokens, prompts). Code deep inside a stage (a
training loop) reaches the innermost open one of its process with `current()`.

A stage opened inside another is one of its parts, also across processes: an engine process
started during the "generate" stage gets that stage's id (`child_env`), so its "engine start" and
each weights set's generation are parts of "generate", and the stage records nest them.

The events are JSON lines appended to the file that EVENTS_ENV names. The benchmark's plugin sets
that variable in the pytest process before any worker or engine process starts, so the stages of
an xdist worker, of an engine process and of a launch's process 0 all report to the one file that
the pytest-xdist controller reads (leakbench.plugin.progress): the terminal a person watches.
Without the variable (the library used from a script) the events are drawn on stderr by the same
`Display`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

EVENTS_ENV = "LEAKBENCH_PROGRESS"
PARENT_ENV = "LEAKBENCH_PROGRESS_PARENT"  # the stage a child process's stages are parts of
ADVANCE_EVERY_S = 1.0
LOG_START_AFTER_S = 2.0  # in a log, a stage still open this long gets a line
LOG_EVERY_S = 60.0  # and another this often while it goes on


def _is_reporting_process() -> bool:
    """Under a multi-process launch (leakbench.launch), process 0 alone reports."""
    return int(os.environ.get("RANK", "0")) == 0


def _emit(event: dict) -> None:
    path = os.environ.get(EVENTS_ENV)
    if path:
        # One write of one short line to a file opened for appending: whole lines, also when
        # several processes report at once.
        with open(path, "a", encoding="utf-8") as events:
            events.write(json.dumps(event) + "\n")
    else:
        _stderr_display().handle(event)


@dataclass
class Stage:
    """One open stage: what `advance`, `set_total`, `note` and `cached` report on."""

    label: str
    id: str
    parent: str | None = None
    cpu_clock: Callable[[], float] = time.process_time
    total: int | None = None
    unit: str = "step"
    done: int = 0
    work: dict[str, float] = field(default_factory=dict)
    status: str = "built"
    parts: list[str] = field(default_factory=list)  # the statuses of its ended in-process parts
    _started: float = field(default_factory=time.monotonic)
    _cpu_started: float = 0.0
    _last_emit: float = 0.0

    def set_total(self, total: int, unit: str = "step") -> None:
        self.total, self.unit = total, unit
        self._send("advance")

    def advance(self, steps: int = 1, **work: float) -> None:
        """`steps` more done; `work` counters (tokens=..., prompts=...) add to the stage's."""
        self.done += steps
        for name, amount in work.items():
            self.work[name] = self.work.get(name, 0) + amount
        if time.monotonic() - self._last_emit >= ADVANCE_EVERY_S:
            self._send("advance")

    def note(self, **facts: object) -> None:
        """Facts about how the stage runs (dtype, threads), kept with its record."""
        self.work.update(facts)

    def cached(self) -> None:
        """The stage found its artifact in the cache: it reports "cached" when it ends."""
        self.status = "cached"

    def _send(self, kind: str, **more: object) -> None:
        self._last_emit = time.monotonic()
        if self.id:
            _emit({"event": kind, "id": self.id, "label": self.label, "time": time.time(),
                   "done": self.done, "total": self.total, "unit": self.unit, **more})


_OPEN: list[Stage] = []  # this process's open stages, innermost last


def _silent() -> Stage:
    """A stage that reports nothing (no id): outside any stage, and in a launch's other
    processes."""
    return Stage("", "")


def current() -> Stage:
    """The innermost open stage of this process (a silent one when none is open)."""
    return _OPEN[-1] if _OPEN else _silent()


@contextmanager
def stage(label: str, *, total: int | None = None, unit: str = "step",
          cpu_clock: Callable[[], float] = time.process_time) -> Iterator[Stage]:
    """Report the block as the stage `label`. `cpu_clock` counts the CPU seconds it used: by
    default this process's (all its threads), an engine's stages count its whole process tree."""
    if not _is_reporting_process():
        yield _silent()
        return
    parent = _OPEN[-1].id if _OPEN else os.environ.get(PARENT_ENV)
    opened = Stage(label, f"{os.getpid()}-{time.monotonic_ns()}", parent, cpu_clock, total,
                   unit)
    opened._cpu_started = cpu_clock()
    _OPEN.append(opened)
    opened._send("start", parent=parent)
    status = None
    try:
        yield opened
        status = opened.status
        if opened.parts and set(opened.parts) == {"cached"} and not opened.done:
            status = "cached"  # a stage whose every part was cached did nothing itself
    finally:
        _OPEN.remove(opened)
        if _OPEN:
            _OPEN[-1].parts.append(status or "failed")
        opened._send("end", status=status or "failed",
                     wall_s=round(time.monotonic() - opened._started, 3),
                     cpu_s=round(cpu_clock() - opened._cpu_started, 3), work=opened.work)


def child_env() -> dict[str, str]:
    """Environment variables for a process started now, whose stages are then parts of the
    innermost open stage."""
    return {PARENT_ENV: current().id} if current().id else {}


class Output(Protocol):
    """Where a `Display` draws: `line` stays on the screen, `status` (a terminal's live line,
    None where the output is no terminal) is replaced by the next status or line."""

    def line(self, text: str) -> None: ...

    status: Callable[[str], None] | None


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def amount(value: float) -> str:
    """1,234 or 1.2M: a count as a person reads it."""
    if value >= 10_000_000:
        return f"{value / 1e6:.0f}M"
    if value >= 1_000_000:
        return f"{value / 1e6:.1f}M"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def describe_work(steps: int, work: dict, unit: str = "step") -> str:
    """A stage's work in words: its steps and its counters (tokens, prompts, threads)."""
    parts = [f"{amount(steps)} {unit}s"] if steps else []
    parts += [f"{amount(value)} {name}" for name, value in work.items()
              if isinstance(value, int | float) and not isinstance(value, bool)]
    return ", ".join(parts)


class Display:
    """Draws events as a person follows a run: on a terminal, a live line with the open stage's
    steps, rate and time left, replaced by one line when the stage ends; elsewhere (a CI log) one
    line when a stage starts and one when it ends. A cached stage is one line. A stage that
    already ended is not shown again: under xdist every worker passes through the stages, and
    those after the first find them cached."""

    def __init__(self, output: Output) -> None:
        self.output = output
        self.open: dict[str, dict] = {}  # id -> the stage's start event, updated
        self.ended: set[str] = set()  # labels
        self.parts_cpu: dict[str, float] = {}  # id -> CPU seconds of its ended parts

    def handle(self, event: dict) -> None:
        kind = event["event"]
        if event["label"] in self.ended:
            self.open.pop(event["id"], None)
            return
        if kind == "start":
            self.open[event["id"]] = {**event, "started": event["time"], "logged": None}
        elif kind == "advance" and event["id"] in self.open:
            stage = self.open[event["id"]]
            stage.update(event, started=stage["started"], logged=stage["logged"])
        elif kind == "end":
            started = self.open.pop(event["id"], {})
            self.ended.add(event["label"])
            self.open = {key: stage for key, stage in self.open.items()  # other workers' copies
                         if stage["label"] != event["label"]}
            cpu = event["cpu_s"] + self.parts_cpu.pop(event["id"], 0.0)
            if started.get("parent"):
                self.parts_cpu[started["parent"]] = self.parts_cpu.get(started["parent"], 0) + cpu
            self.output.line(f"LeakBench {event['label']}: {self._ended({**event, 'cpu_s': cpu})}")
        self._draw_status(event.get("time", time.time()))

    def refresh(self, now: float | None = None) -> None:
        """Redraw the live line (its rate and time left change between events); in a log, the
        line of a stage open for LOG_START_AFTER_S, then every LOG_EVERY_S."""
        self._draw_status(now if now is not None else time.time())

    @staticmethod
    def _ended(event: dict) -> str:
        if event["status"] == "cached":
            return "cached"
        work = describe_work(event["done"], event["work"], event["unit"])
        return (f"{event['status']} in {duration(event['wall_s'])}"
                f" (CPU {duration(event['cpu_s'])}{', ' + work if work else ''})")

    def _draw_status(self, now: float) -> None:
        if not self.open:
            return
        if self.output.status is not None:
            self.output.status(self._state(list(self.open.values())[-1], now))
            return
        for stage in self.open.values():
            since = now - (stage["logged"] or stage["started"])
            if since >= (LOG_EVERY_S if stage["logged"] else LOG_START_AFTER_S):
                self.output.line(self._state(stage, now))
                stage["logged"] = now

    @staticmethod
    def _state(stage: dict, now: float) -> str:
        """An open stage in one line: its time so far, steps, rate and time left."""
        elapsed = max(0.0, now - stage["started"])
        text = f"LeakBench {stage['label']}: {duration(elapsed)}"
        done, total = stage.get("done") or 0, stage.get("total")
        if total:
            text += f", {amount(done)}/{amount(total)} {stage['unit']}s"
            if done and elapsed > 0:
                rate = done / elapsed
                text += f", {rate:.1f}/s, about {duration((total - done) / rate)} left"
        return text


class _Stderr:
    def __init__(self) -> None:
        self.status = self._status if sys.stderr.isatty() else None
        self._live = False

    def line(self, text: str) -> None:
        sys.stderr.write(("\r\033[K" if self._live else "") + text + "\n")
        self._live = False

    def _status(self, text: str) -> None:
        sys.stderr.write("\r\033[K" + text)
        sys.stderr.flush()
        self._live = True


_DISPLAY: list[Display] = []


def _stderr_display() -> Display:
    if not _DISPLAY:
        _DISPLAY.append(Display(_Stderr()))
    return _DISPLAY[0]


def stage_records(events: list[dict]) -> list[dict]:
    """What each stage of the run cost: its label, built / cached / failed, wall and CPU seconds
    (its parts' included), steps and work; each stage followed by its parts (`part_of` names the
    stage they belong to), in the order they started. A stage that several processes passed
    through (every xdist worker does) counts once, as the first to end it, and its parts are
    those of every pass: the first to end a part may have been inside another worker's pass."""
    starts = {event["id"]: event for event in events if event["event"] == "start"}
    ends = {}
    for event in events:
        if event["event"] == "end" and event["label"] not in ends:
            ends[event["label"]] = event
    kept = {event["id"]: event for event in ends.values()}
    parts: dict[str | None, list[dict]] = {}
    for event in sorted(kept.values(), key=lambda e: e["time"] - e["wall_s"]):
        parent = starts.get(starts.get(event["id"], {}).get("parent"))
        stage = ends.get(parent["label"]) if parent else None  # the pass of it that is kept
        parts.setdefault(stage["id"] if stage else None, []).append(event)

    def cpu(event: dict) -> float:
        return event["cpu_s"] + sum(cpu(part) for part in parts.get(event["id"], []))

    def records(event: dict, part_of: str | None) -> list[dict]:
        record = {"stage": event["label"], "status": event["status"], "wall_s": event["wall_s"],
                  "cpu_s": round(cpu(event), 3),
                  **({"steps": event["done"]} if event["done"] else {}), "work": event["work"]}
        if part_of is not None:
            record["part_of"] = part_of
        return [record, *(r for part in parts.get(event["id"], [])
                          for r in records(part, event["label"]))]

    return [record for event in parts.get(None, []) for record in records(event, None)]


def read_events(path: str | os.PathLike, offset: int = 0) -> tuple[list[dict], int]:
    """The whole event lines of the file from byte `offset` on, and the offset after them (a line
    still being written is left for the next read)."""
    with open(path, "rb") as events:
        events.seek(offset)
        data = events.read()
    complete = data[: data.rfind(b"\n") + 1]
    return [json.loads(line) for line in complete.splitlines() if line.strip()], \
        offset + len(complete)
