"""Convert WizardLM evol-instruct V2 (`conversations` layout) to Alpaca JSON Lines: 20k shuffled rows.

Run from the repository root (the Hub download needs the network once)::

    python recipes/convert_wizardlm.py WizardLMTeam/WizardLM_evol_instruct_V2_196k \\
        -o data/wizardlm_evol_instruct_v2_20k.jsonl --n 20000 --seed 0

Same as ``python -m hf_uniform.convert``; the logic lives in ``hf_uniform.convert``.
"""

import sys

from hf_uniform.convert import main

if __name__ == "__main__":
    sys.exit(main())
