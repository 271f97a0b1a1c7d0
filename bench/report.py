"""Results as markdown (`bench/results.md`) and the headline lines printed at the end.

This module only assembles: each measure's module owns its targets, its headline rows and its
section (`p1_production`: P1 in-process and P6; `p1_latency`: P1 through the local host;
`p2_import`: P2 and the whole cold start; `p3_bulk`; `p4_memory`; `p5_shared`; `profiling`:
where the time goes). The report holds numbers and tables; what they mean is the README's
Performance section.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench import p1_latency, p1_production, p2_import, p3_bulk, p4_memory, p5_shared, profiling
from bench.cold_start import ColdStart
from bench.common import Headline
from bench.p1_latency import Series
from bench.p2_import import ImportTiming
from bench.p3_bulk import BulkResult
from bench.p4_memory import Checkpoint
from bench.p5_shared import SharedRun
from bench.profiling import LayerProfile, PacingProbe


@dataclass
class Results:
    machine: dict[str, str]
    p1: dict[int, dict[str, Series]] = field(default_factory=dict)  # through the local host
    p1_prod: dict[int, dict[str, Series]] = field(default_factory=dict)  # in-process
    p6: dict[str, list[float]] = field(default_factory=dict)  # "paced" / "unpaced" latencies
    p5: list[SharedRun] = field(default_factory=list)  # store up, then stopped mid-run
    p2_deployed: dict[str, ImportTiming] = field(default_factory=dict)
    p2_venv: dict[str, ImportTiming] = field(default_factory=dict)
    p2_heavy: list[tuple[str, str, float]] = field(default_factory=list)
    p2_hidden: int = 0
    p2_app_self: float = 0.0
    cold_start: ColdStart | None = None  # a report line beside P2
    p3: BulkResult | None = None
    p4: list[Checkpoint] = field(default_factory=list)
    p4_target_actions: int = 100_000
    p4_seconds_cap: float = 0.0
    profiles: dict[int, LayerProfile] = field(default_factory=dict)
    pacing: PacingProbe | None = None
    duration_seconds: float = 0.0


def headlines(results: Results) -> list[Headline]:
    return [
        *p1_production.headlines(results.p1_prod),
        *p2_import.headlines(results.p2_deployed, results.p2_venv),
        *p3_bulk.headlines(results.p3),
        *p1_production.p6_headlines(results.p6),
        *p5_shared.headlines(results.p5),
        *p4_memory.headlines(results.p4, target_actions=results.p4_target_actions),
    ]


def render(results: Results) -> str:
    m = results.machine
    head = [
        "# Benchmarks (`make bench`)",
        "",
        f"- date: {m['date']}",
        f"- machine: {m['cpus']} CPUs, {m['platform']}, Python {m['python']}",
        (
            f"- load average before / after: {m['load_before']} / {m['load_after']}"
            " (other work on the machine shows up in every number)"
        ),
        f"- whole run: {results.duration_seconds:.0f} s",
        "",
        "## Headline",
        "",
        "| measure | measured | target | met |",
        "|---|---|---|---|",
        *(
            f"| {h.name} | {h.measured} | {h.target} | {'yes' if h.met else 'NO'} |"
            for h in headlines(results)
        ),
    ]
    sections = [
        p1_production.section(results.p1_prod),
        p1_latency.section(results.p1),
        p2_import.section(
            results.p2_deployed,
            results.p2_venv,
            hidden=results.p2_hidden,
            heavy=results.p2_heavy,
            app_self_seconds=results.p2_app_self,
            cold=results.cold_start,
        ),
        p3_bulk.section(results.p3),
        p1_production.p6_section(results.p6),
        p4_memory.section(
            results.p4,
            target_actions=results.p4_target_actions,
            seconds_cap=results.p4_seconds_cap,
        ),
        p5_shared.section(results.p5),
        profiling.section(results.profiles, results.pacing),
    ]
    return "\n".join(head + [line for section in sections for line in ["", *section]] + [""])


def print_headlines(results: Results) -> None:
    print()
    print("bench: headline ratios (details in bench/results.md)")
    for h in headlines(results):
        print(f"  {'ok  ' if h.met else 'MISS'} {h.name}: {h.measured} (target {h.target})")
