"""``hf-uniform push``: the folder written by ``hf-uniform select`` to the Hub as a dataset with its card.

The work is :func:`hf_uniform.hub.push_subset`; this module parses the arguments, checks them before anything
is read or sent, and turns a failed upload into one line and exit status 2. ``hf_uniform.hub`` is imported
only when the command runs, so ``hf-uniform --help`` stays instant.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from typing import Any

from ..errors import MissingFileError, UniformError


def add_push_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``hf-uniform push`` on the CLI's sub-parsers; return the new parser.

    Example:
        >>> p = argparse.ArgumentParser(); sub = p.add_subparsers(dest="command")
        >>> _ = add_push_parser(sub)
        >>> p.parse_args(["push", "out", "--repo-id", "alice/x", "--dry-run", "--to", "d"]).dry_run
        True
    """
    p = subparsers.add_parser(
        "push", help="push the folder written by `hf-uniform select` to the Hub as a dataset with its card",
        description="Push the folder written by `hf-uniform select` to the Hub as a dataset (data/train-*.parquet, "
                    "selection.json, uniformity.png and a dataset card). The token comes from HF_TOKEN or "
                    "`hf auth login`.")
    p.add_argument("out", metavar="OUT", help="the folder written by `hf-uniform select`")
    p.add_argument("--repo-id", required=True, help="USER/NAME of the dataset repo (created when missing)")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--revision", help="branch to push to (created when missing; default: main)")
    p.add_argument("--commit-message", help="commit message")
    p.add_argument("--license", help="Hub licence id, e.g. cc-by-nc-4.0 (default: the source's, when recorded)")
    p.add_argument("--language", action="append", help="language code, e.g. en (repeat for several)")
    p.add_argument("--task-category", action="append", dest="task_categories",
                   help="Hub task category (repeatable; default: the source's, else text-generation)")
    p.add_argument("--source-dataset", help="Hub id of the source when the selection ran on a local copy")
    p.add_argument("--pretty-name", help="title of the dataset card")
    p.add_argument("--embedder-id", help="Hub id of the embedding model when select ran on a local copy "
                   "(--embedder st:/path); default: the id the folder's model card names")
    p.add_argument("--no-baselines", action="store_true", help="do not push random.*/mixed.* as extra configs")
    p.add_argument("--template", help="a Jinja dataset-card template instead of model_cards/dataset_card.md")
    p.add_argument("--dry-run", action="store_true", help="write the repo folder to --to instead of uploading")
    p.add_argument("--to", metavar="DIR", help="with --dry-run: a new or empty folder to write to")
    p.add_argument("-q", "--quiet", action="store_true", help="no log messages")
    p.set_defaults(func=push_command)
    return p


def push_command(args: argparse.Namespace) -> int:
    """Run ``hf-uniform push``; return the exit status (bad input raises :class:`UniformError`).

    Example:
        >>> ns = argparse.Namespace(out="missing", repo_id="alice/x", dry_run=True, to=None)
        >>> push_command(ns)
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: --dry-run needs --to DIR (the folder to write the repo to)
    """
    from ..hub import push_subset, validate_repo_id

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per HTTP request is noise here
    if args.dry_run and not args.to:
        raise UniformError("--dry-run needs --to DIR (the folder to write the repo to)")
    if args.to and not args.dry_run:
        raise UniformError("--to is only used with --dry-run; add --dry-run or drop --to")
    from ..io import resolve_path

    validate_repo_id(args.repo_id)
    out = resolve_path(args.out)  # resolved before any check: what is checked is what is read
    if not out.is_dir():
        raise MissingFileError(f"{out} is not a folder: pass the folder written by `hf-uniform select -o OUT`")
    if not (out / "selection.json").is_file():
        raise MissingFileError(f"{out} has no selection.json: pass the folder written by `hf-uniform select -o OUT`")
    kwargs = dict(selection=out / "selection.json", private=True if getattr(args, "private", False) else None,
                  revision=getattr(args, "revision", None), commit_message=getattr(args, "commit_message", None),
                  baselines={} if getattr(args, "no_baselines", False) else None,
                  license=getattr(args, "license", None), language=getattr(args, "language", None),
                  task_categories=getattr(args, "task_categories", None),
                  source_dataset=getattr(args, "source_dataset", None),
                  pretty_name=getattr(args, "pretty_name", None), template=getattr(args, "template", None),
                  embedder_id=getattr(args, "embedder_id", None))
    if args.dry_run:
        result = push_subset(out, args.repo_id, dry_run_to=args.to, **kwargs)  # resolved there, before its check
        print(f"dry run: wrote {len(result.files)} files to {result.folder}:")
        for name in result.files:
            print(f"  {name}")
        return 0
    try:
        result = push_subset(out, args.repo_id, **kwargs)
    except (UniformError, FileNotFoundError):  # bad input, found before anything was sent
        raise
    except Exception as err:  # the Hub or the network failed: one line, no traceback, nothing partial
        if not _is_network_error(err):
            raise
        print(f"hf-uniform: error: push to {args.repo_id} failed: {_first_line(err)}", file=sys.stderr)
        return 2
    print(f"pushed {len(result.files)} files to {result.url}")
    if result.commit_url:
        print(f"commit: {result.commit_url}")
    return 0


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def _is_network_error(err: BaseException) -> bool:
    if isinstance(err, OSError):
        return True
    with contextlib.suppress(ImportError):
        from huggingface_hub.errors import HfHubHTTPError

        if isinstance(err, HfHubHTTPError):
            return True
    with contextlib.suppress(ImportError):
        import httpx

        if isinstance(err, httpx.HTTPError):
            return True
    return False
