"""``hf-uniform select``: :func:`hf_uniform.pipeline.run_selection` with the command's options, then the report."""

from __future__ import annotations

import argparse
import shlex
import sys

from .printing import _print_lengths, _print_report


def selection_options(args: argparse.Namespace) -> dict:
    """``run_selection`` keyword arguments from the parsed ``select`` options (shared with ``--ray``).

    Example:
        >>> from hf_uniform.cli import build_parser
        >>> opts = selection_options(build_parser().parse_args(["select", "d.jsonl", "-k", "3", "-o", "o",
        ...                                                     "--no-plot", "--revision", "v1.0"]))
        >>> opts["plot"], opts["cache"], opts["k"], opts["revision"]
        (False, True, 3, 'v1.0')
    """
    import dataclasses

    from ..spine import SelectConfig

    opts = {f.name: getattr(args, f.name) for f in dataclasses.fields(SelectConfig) if hasattr(args, f.name)}
    opts.update({name: getattr(args, name) for name in ("input", "output", "split", "revision", "format", "heldout",
                                                         "baselines", "overwrite")})
    argv = getattr(args, "argv", None) or sys.argv[1:]
    return {**opts, "plot": not args.no_plot, "progress": not args.quiet, "command": "hf-uniform " + shlex.join(argv)}


def select_command(args: argparse.Namespace) -> int:
    """Run ``hf-uniform select``: :func:`~hf_uniform.pipeline.run_selection` (validate, read, embed, select,
    write the subset files, then ``selection.json`` last), then print the uniformity and length tables."""
    from ..io import is_main_process
    from ..pipeline import run_selection

    opts = selection_options(args)
    record = run_selection(opts.pop("input"), opts.pop("k"), opts.pop("output"), **opts)
    if not is_main_process():
        return 0
    out = args.output
    if record.extra.get("backend") == "ray":
        r = record.extra
        cl = r["cluster"]
        print(f"uniformity ({record.metric} distance), k={record.k} of n={record.n}: Ray core-set, {r['shards']} "
              f"shards x {r['k_per_shard']} rows, cluster of {cl['nodes']} node(s) / {cl['cpus']} CPU(s) / "
              f"{cl['gpus']} GPU(s)")
        print(f"h (min pairwise) {record.h if record.h is not None else float('nan'):.6f}; coverage radius "
              f"{record.coverage_radius:.6f} ({r['coverage_radius_over']})")
    else:
        _print_report(record.report, record.k, record.n, record.metric)
        _print_lengths(record.lengths)
        if record.k > 1 and record.h == 0.0:
            print("note: h = 0 - the pool has duplicates and the subset contains at least two equal rows")
    from ..io import resolve_path

    folder = resolve_path(out)  # where it was written (nothere/../Y is Y)
    print(f"wrote {folder / record.subset_file} and {folder / 'selection.json'}")
    return 0
