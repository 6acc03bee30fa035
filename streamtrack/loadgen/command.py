"""`streamtrack loadgen`: run the traffic model against an API and report as it goes.

Progress goes to stderr once a second as a line for people, or to stdout as JSON lines
(`--progress json`) for the dev-mode control that runs this command as a child process.
Ctrl-C (or SIGTERM, or stdin closing with `--stop-on-eof`) stops sending, lets the
requests in flight finish, and prints the summary; a second Ctrl-C stops at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import threading
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when the command runs: `streamtrack --help` stays quick
    from streamtrack.loadgen.sender import LoadPlan
    from streamtrack.loadgen.stats import LoadStats
    from streamtrack.loadgen.traffic import Traffic


def parse_rate(text: str) -> float | None:
    """`--rate`: events per second, or `max` (None: as fast as the API answers)."""
    if text.strip().lower() == "max":
        return None
    try:
        rate = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected events per second or 'max', got {text!r}") from None
    if not 0 < rate <= 1_000_000:
        raise argparse.ArgumentTypeError(f"expected a rate between 0 and 1,000,000 events/s, got {text}")
    return rate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the API's base URL (default http://127.0.0.1:8000)")
    parser.add_argument("--rate", type=parse_rate, default=100.0, help="events per second, or 'max' (default 100)")
    until = parser.add_mutually_exclusive_group()
    until.add_argument("--duration", type=float, help="seconds to run (default: until Ctrl-C)")
    until.add_argument("--count", type=int, help="events to send, then stop")
    parser.add_argument("--batch-size", type=int, help="events per request; 1 = single POST /track requests "
                        "(default: 1 up to 100 events/s, then enough per POST /batch for ~100 requests/s; 100 at max)")
    parser.add_argument("--key", default=os.environ.get("STREAMTRACK_LOADGEN_KEY"),
                        help="a write key of the project to send to, when the API requires keys (env STREAMTRACK_LOADGEN_KEY)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight at most (default 16)")
    parser.add_argument("--seed", type=int, help="seed of the traffic model (default: random); same seed, same traffic")
    parser.add_argument("--users", type=int, default=1000, help="distinct users in the model (default 1000)")
    parser.add_argument("--progress", choices=["text", "json", "none"], default="text",
                        help="text: a line per second on stderr; json: JSON lines on stdout")
    parser.add_argument("--stop-on-eof", action="store_true", help=argparse.SUPPRESS)  # the dev control's child


def run(args: argparse.Namespace) -> int:
    """Exit code 0, or 1 when most events failed (or the arguments are unusable: 2)."""
    from streamtrack.loadgen.sender import LoadPlan, auto_batch_size
    from streamtrack.loadgen.traffic import Traffic

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    run_id = f"lg-{uuid.uuid4().hex[:10]}"
    try:
        if args.users < 1:
            raise ValueError("users must be at least 1")
        plan = LoadPlan(
            url=args.url, rate=args.rate, duration_s=args.duration, count=args.count,
            batch_size=args.batch_size or auto_batch_size(args.rate), concurrency=args.concurrency, key=args.key,
        )
    except ValueError as exc:
        print(f"streamtrack loadgen: {exc}", file=sys.stderr)
        return 2
    traffic = Traffic(seed=seed, users=args.users, run_id=run_id)
    mode = "POST /track" if plan.batch_size == 1 else f"POST /batch of {plan.batch_size}"
    rate = "as fast as possible" if plan.rate is None else f"{plan.rate:g} events/s"
    if args.progress != "json":
        print(f"loadgen: {rate} to {plan.url} ({mode}, {plan.concurrency} in flight, "
              f"{args.users} users, seed {seed}, event ids {run_id}-N)", file=sys.stderr)
    stats = asyncio.run(_run(plan, traffic, args.progress, args.stop_on_eof, {"run_id": run_id, "batch_size": plan.batch_size}))
    if args.progress != "json":
        print(_summary(stats, plan))
    return 1 if stats.errors * 2 > stats.sent else 0


async def _run(plan: LoadPlan, traffic: Traffic, progress: str, stop_on_eof: bool, about: dict[str, Any]) -> LoadStats:
    from streamtrack.loadgen.sender import run_load

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)

    def first_signal() -> None:  # the next one stops at once (the default handlers are back)
        stop.set()
        for sig in signals:
            loop.remove_signal_handler(sig)

    for sig in signals:
        loop.add_signal_handler(sig, first_signal)
    if stop_on_eof:  # the parent (dev mode) went away: stop rather than load nothing forever
        threading.Thread(target=_wait_eof, args=(loop, stop), daemon=True).start()
    return await run_load(plan, traffic, stop=stop, on_progress=_reporter(progress, about))


def _wait_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    sys.stdin.buffer.read()
    loop.call_soon_threadsafe(stop.set)


def _reporter(progress: str, about: dict[str, Any]) -> Any:
    if progress == "json":  # with the run's id and batch size: the dashboard shows them
        return lambda status: print(json.dumps({**status, **about}), flush=True)
    if progress == "text":
        from streamtrack.loadgen.stats import progress_line

        return lambda status: print(progress_line(status), file=sys.stderr, flush=True)
    return None


def _summary(stats: LoadStats, plan: LoadPlan) -> str:
    status = stats.snapshot()
    target = "max" if plan.rate is None else f"{plan.rate:g}/s"
    lines = [
        f"sent {status['sent']} events over {status['elapsed_s']:.1f} s, {status['requests']} requests answered "
        f"(target {target}, achieved {status['achieved_rate']:,.1f} accepted events/s)",
        f"accepted {status['accepted']}, errors {status['errors']}, retried {status['retries']}",
        f"request latency ms: p50 {status['p50_ms']:.1f}, p95 {status['p95_ms']:.1f}, p99 {status['p99_ms']:.1f}",
    ]
    for reason, n in sorted(stats.errors_by_reason.items()):
        lines.append(f"  {n} events failed: {reason}")
    return "\n".join(lines)
