"""Publishing to the Hugging Face Hub: uniform subsets as datasets, fine-tuned checkpoints as models.

* :func:`push_subset` (and ``hf-uniform push OUT --repo-id USER/NAME``) pushes the folder written by
  ``hf-uniform select`` as a dataset repo that ``load_dataset(repo_id)`` reads: ``data/train-*.parquet``, the
  baselines as extra configs, ``selection.json``, the PCA coverage plot and a dataset card.
* :func:`push_checkpoint` pushes a fine-tuned model folder with a model card (base model, training subset
  and its h, recipe, time-to-threshold table, lm-eval results, reproduce command).
* :func:`render_dataset_card` / :func:`render_model_card` render the cards from ``model_cards/*.md``
  through ``huggingface_hub``'s ``DatasetCard`` / ``ModelCard``.

Every check (repo id, input files, card rendering, secrets) runs before the first request to the Hub, and
``dry_run_to`` / ``--dry-run --to DIR`` writes exactly the files that would be pushed. Tokens come from
``huggingface_hub``'s usual sources (``token=``, ``HF_TOKEN``, ``hf auth login``); they are never logged,
printed or written, and a push is refused if a file about to be uploaded contains one.

``hf-uniform push`` itself lives in :mod:`hf_uniform.cli.push`.

Modules: :mod:`~hf_uniform.hub.checks` (repo ids, secrets, reading the records), :mod:`~hf_uniform.hub.tables`
(the card tables), :mod:`~hf_uniform.hub.cards` (card rendering), :mod:`~hf_uniform.hub.push` (staging and
uploads).

Example:
    >>> from hf_uniform.hub import validate_repo_id
    >>> validate_repo_id("alice/alpaca-uniform")
    'alice/alpaca-uniform'
"""

from __future__ import annotations

from .cards import (
    BASELINE_DESCRIPTIONS,
    CITATION_BIBTEX,
    DEFAULT_TASK_CATEGORIES,
    MODEL_TAGS,
    PAPER_TITLE,
    PAPER_URL,
    REGIMES,
    SUBSET_TAGS,
    render_dataset_card,
    render_model_card,
)
from .checks import size_category, validate_repo_id
from .push import (
    CHECKPOINT_EXCLUDE,
    MAX_SHARD_BYTES,
    MODEL_FILE_PATTERNS,
    SUBSET_DELETE_PATTERNS,
    PushResult,
    push_checkpoint,
    push_subset,
    stage_subset,
)

__all__ = [
    "BASELINE_DESCRIPTIONS",
    "CHECKPOINT_EXCLUDE",
    "CITATION_BIBTEX",
    "DEFAULT_TASK_CATEGORIES",
    "MAX_SHARD_BYTES",
    "MODEL_FILE_PATTERNS",
    "MODEL_TAGS",
    "PAPER_TITLE",
    "PAPER_URL",
    "REGIMES",
    "SUBSET_DELETE_PATTERNS",
    "SUBSET_TAGS",
    "PushResult",
    "push_checkpoint",
    "push_subset",
    "render_dataset_card",
    "render_model_card",
    "size_category",
    "stage_subset",
    "validate_repo_id",
]

