"""Convert WizardLM evol-instruct V2 (`conversations` layout) to Alpaca JSON Lines: 20k shuffled rows.

Run from the repository root (the Hub download needs the network once)::

    python recipes/convert_wizardlm.py WizardLMTeam/WizardLM_evol_instruct_V2_196k \\
        -o data/wizardlm_evol_instruct_v2_20k.jsonl --n 20000 --seed 0

The conversion itself is the library function ``hf_uniform.convert.convert_wizardlm``.
"""

import argparse
import logging
import sys
from collections.abc import Sequence

from hf_uniform.convert import MULTI_TURN, WIZARDLM_V2, convert_wizardlm
from hf_uniform.errors import UniformError


def main(argv: Sequence[str] | None = None) -> int:
    """``python recipes/convert_wizardlm.py SOURCE -o OUT.jsonl [--n 20000] [--seed 0]``; bad input exits 2."""
    p = argparse.ArgumentParser(prog="python recipes/convert_wizardlm.py",
                                description="Convert WizardLM-style `conversations` rows to Alpaca "
                                            "instruction/input/output JSON Lines, shuffled, first n rows.")
    p.add_argument("source", help=f"Hub dataset id (e.g. {WIZARDLM_V2}) or a .json/.jsonl/.parquet file")
    p.add_argument("-o", "--output", required=True, help="output .jsonl file")
    p.add_argument("--n", type=int, default=20000, help="rows to keep after shuffling (default 20000, the paper's)")
    p.add_argument("--all", action="store_true", help="keep every converted row (shuffled) instead of --n")
    p.add_argument("--seed", type=int, default=0, help="shuffle seed (default 0)")
    p.add_argument("--split", default="train")
    p.add_argument("--column", default="conversations")
    p.add_argument("--multi_turn", choices=MULTI_TURN, default="first",
                   help="longer conversations: keep their first human->gpt pair (default) or skip them")
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        record = convert_wizardlm(args.source, args.output, n=None if args.all else args.n, seed=args.seed,
                                  split=args.split, column=args.column, multi_turn=args.multi_turn,
                                  overwrite=args.overwrite)
    except UniformError as err:
        print(f"convert: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {record['rows_out']} rows ({record['rows_converted']} of {record['rows_in']} converted) "
          f"to {record['output']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
