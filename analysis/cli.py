"""Command line: ``python -m analysis {tables,plots,report} --runs DIR [DIR ...] ...``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from analysis.collect import AnalysisError, ExpectedGrid, collect
from analysis.published import PUBLISHED_CSV, load_published

DESCRIPTION = """\
Collect result records (result.json under --runs, and/or W&B runs) into tables and figures.

  tables  -> OUT/tables/*.{md,tex,csv} and OUT/results.csv (tidy, one row per run x metric)
  plots   -> OUT/figures/*.{png,pdf,json}
  report  -> both, plus OUT/report.md linking them

OUT defaults to <first --runs DIR>/report (./report with --wandb only).
"""


def _csv_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and --help)."""
    p = argparse.ArgumentParser(
        prog="python -m analysis",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("command", choices=("tables", "plots", "report"))
    p.add_argument(
        "--runs",
        nargs="+",
        type=Path,
        default=[],
        metavar="DIR",
        help="run directories searched recursively for result.json",
    )
    p.add_argument(
        "--wandb",
        metavar="ENTITY/PROJECT[/GROUP]",
        help="also read the runs of this W&B project (group) via wandb.Api()",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="output folder (default: <first runs dir>/report)"
    )
    p.add_argument(
        "--tasks",
        type=_csv_list,
        default=["rte", "boolq", "cb"],
        help="comma list averaged in the scale figure (default: rte,boolq,cb)",
    )
    p.add_argument(
        "--group",
        type=_csv_list,
        default=None,
        help="comma list of groups (presets/sweeps) to keep (default: all)",
    )
    p.add_argument(
        "--published",
        type=Path,
        default=PUBLISHED_CSV,
        help=f"published-number CSV (default: {PUBLISHED_CSV.name} in the package)",
    )
    p.add_argument("--no-published", action="store_true", help="skip published comparisons")
    grid = p.add_argument_group("explicit expected grid (default: cross product of what is seen)")
    grid.add_argument("--expect-models", type=_csv_list, default=None)
    grid.add_argument("--expect-methods", type=_csv_list, default=None)
    grid.add_argument("--expect-tasks", type=_csv_list, default=None)
    grid.add_argument("--expect-seeds", type=_csv_list, default=None)
    return p


def _expected(args: argparse.Namespace) -> ExpectedGrid | None:
    given = [args.expect_models, args.expect_methods, args.expect_tasks]
    if all(g is None for g in given) and args.expect_seeds is None:
        return None
    if any(g is None for g in given):
        raise AnalysisError("--expect-models, --expect-methods and --expect-tasks go together")
    try:
        seeds = [int(s) for s in args.expect_seeds] if args.expect_seeds is not None else None
    except ValueError as exc:
        raise AnalysisError(f"--expect-seeds: {exc}") from exc
    return ExpectedGrid(args.expect_models, args.expect_methods, args.expect_tasks, seeds)


def run(args: argparse.Namespace) -> Path:
    """Execute one command; returns the output folder. Raises AnalysisError on bad input."""
    if not args.runs and not args.wandb:
        raise AnalysisError("give --runs DIR [DIR ...] and/or --wandb ENTITY/PROJECT[/GROUP]")
    out = args.out or (args.runs[0] / "report" if args.runs else Path("report"))
    df = collect(args.runs, wandb_path=args.wandb, expected=_expected(args), groups=args.group)
    published = None if args.no_published else load_published(args.published)
    sources = [str(r) for r in args.runs] + ([f"wandb:{args.wandb}"] if args.wandb else [])
    tables, figures = [], {}
    if args.command in ("tables", "report"):
        from analysis.tables import write_tables

        out.mkdir(parents=True, exist_ok=True)
        df.to_csv(out / "results.csv", index=False)
        tables = write_tables(df, out / "tables", published)
    if args.command in ("plots", "report"):
        from analysis.figures import write_figures

        figures = write_figures(df, out / "figures", args.tasks, published)
    if args.command == "report":
        from analysis.report import write_report

        path = write_report(df, out, tables, figures, sources)
        print(f"wrote {path}")
    else:
        print(f"wrote {args.command} to {out}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; prints one clear error and returns 2 on bad input."""
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except AnalysisError as exc:
        print(f"analysis: error: {exc}", file=sys.stderr)
        return 2
    return 0
