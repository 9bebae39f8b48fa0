"""The study's runner: the pool and its held-out split, the embedded training pool, the arms, and one
train + evaluate job per arm and seed.

``recipes/compare.py`` drives it::

    study = Study(cfg, train=sft_main)  # sft_main: recipes/sft.py's main, run for every arm and seed
    study.load_pool()        # pool, held-out split (split.json), second held-out source
    study.embed_pool()       # embeddings of the training pool (hf_uniform.cache, in WORK_DIR/embeddings)
    study.build_arms()       # each seed's pool draw and the rows of every arm (arms.json)
    rec = study.run_one("uniform", 0)  # train, evaluate, write runs/uniform-seed0.json (or read it back)

A finished arm/seed writes ``runs/<arm>-seed<s>.json`` in the output folder; a rerun reads it back instead
of training again (its settings fingerprint, :meth:`Study.run_settings`, must match).

Time is the training clock of :class:`~hf_uniform.train.TimeToThresholdCallback` (starts at
``on_train_begin``) minus the wall-clock of the periodic held-out evaluations, i.e. seconds of training
alone; steps are optimizer steps. Both are reported because wall-clock on a shared machine is noisy.

Example:
    >>> from hf_uniform.study import StudyConfig
    >>> Study(StudyConfig(pool="p.jsonl", recipe="r.yaml", output_dir="out/s")).record_path("uniform", 0).as_posix()
    'out/s/runs/uniform-seed0.json'
"""

from __future__ import annotations

import gc
import json
import logging
import shlex
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..cache import stable_hash
from ..errors import UniformError
from ..heldout import split_heldout
from ..io import atomic_dir, atomic_path, atomic_write_json, atomic_write_text
from ..records import read_json_record
from .arms import arm_geometry, build_arm_indices, resolve_k, seed_pools
from .base_eval import FINGERPRINT_LENGTH, _recipe_content, loss_over_rows
from .config import ARMS, LOSS_KINDS, StudyConfig
from .curves import curves_from_run

logger = logging.getLogger(__name__)

def _write_jsonl(ds: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        ds.to_json(str(tmp), lines=True, force_ascii=False)
    return path


def _check_cached_selection(arms_path: Path, name: str, cached: list[int], fresh: np.ndarray) -> None:
    """Refuse a cached ``uniform``/``mixed`` arm that is not the engine's selection on today's embeddings.

    The arms cache is keyed on the settings, not on the embedding values or the engine, so a cache written by
    another embedding (or version) would otherwise train on rows no current selection picks. Selecting again
    costs milliseconds at study sizes.

    Example:
        >>> _check_cached_selection(Path("arms.json"), "uniform-seed0", [3, 1], np.array([3, 1]))
        >>> _check_cached_selection(Path("arms.json"), "uniform-seed0", [3, 1], np.array([3, 2]))
        Traceback (most recent call last):
        ...
        hf_uniform.errors.UniformError: arms.json: the cached rows of uniform-seed0 are not what the engine ...
    """
    cached_arr = np.asarray(cached, dtype=np.int64)
    if cached_arr.shape == fresh.shape and np.array_equal(cached_arr, fresh):
        return
    differ = int(len(cached_arr) - np.intersect1d(cached_arr, fresh).size)
    raise UniformError(f"{arms_path}: the cached rows of {name} are not what the engine selects on these "
                       f"embeddings ({differ} of {len(cached_arr)} rows differ); delete {arms_path} to select again")


class Study:
    """State of one study: output and work folders, the pool, its split, the embeddings and the arms.

    Call :meth:`load_pool`, :meth:`embed_pool` and :meth:`build_arms` in this order, then :meth:`run_one` per
    arm and seed (``recipes/compare.py`` shows the whole run).
    """

    def __init__(self, cfg: StudyConfig, train: Callable[[Any, Any, Any], dict[str, Any]] | None = None):
        self.cfg = cfg
        self.train = train  # one fine-tune: recipes/sft.py's main(training_args, model_args, script_args)
        self.out = Path(cfg.output_dir)
        self.work = cfg.work_path
        self.second_ds = None

    # -- data and arms -----------------------------------------------------------------------------------
    def load_pool(self) -> None:
        """Read the pool, hold out the fixed split (``split.json``, ``WORK_DIR/data/heldout.jsonl``) before
        anything else, and draw the rows scored from the second held-out source."""
        from ..io import load_input, read_source

        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        src = read_source(cfg.pool)
        pool = src.to_dataset()
        self.pool, self.pool_digest = pool, src.fingerprint()  # the content hash of the file
        n = len(pool)
        heldout, train = split_heldout(n, cfg.heldout_size, cfg.heldout_seed)
        self.heldout_idx, self.train_idx = heldout, train
        self.heldout_file = self.work / "data" / "heldout.jsonl"
        _write_jsonl(pool.select(heldout.tolist()), self.heldout_file)  # always: an older file may be stale
        self.heldout_ds = pool.select(heldout.tolist())
        self.train_pool = pool.select(train.tolist())
        atomic_write_json(self.out / "split.json", {
            "pool": cfg.pool, "pool_digest": self.pool_digest, "rows": n, "heldout_seed": cfg.heldout_seed,
            "heldout": heldout.tolist(), "train_rows": len(train)})
        logger.info("held out %d of %d rows (seed %d); training pool %d rows", len(heldout), n,
                    cfg.heldout_seed, len(train))
        if cfg.second_heldout:
            second = load_input(cfg.second_heldout)
            m = int(cfg.second_heldout_size) if cfg.second_heldout_size >= 1 else int(
                round(cfg.second_heldout_size * len(second)))
            if not 0 < m <= len(second):
                raise UniformError(f"second_heldout_size {cfg.second_heldout_size} gives {m} of {len(second)} rows")
            rows2 = np.sort(np.random.default_rng(cfg.heldout_seed).permutation(len(second))[:m])
            self.second_ds = second.select(rows2.tolist())

    def embed_pool(self) -> np.ndarray:
        """Embeddings of the training pool (``cfg.embedder``), cached by :mod:`hf_uniform.cache` in
        ``WORK_DIR/embeddings``; also the row lengths (:func:`hf_uniform.lengths.row_lengths`)."""
        from ..embedders import resolve_embedder
        from ..integration import embed
        from ..lengths import row_lengths

        cfg = self.cfg
        t0 = time.perf_counter()
        emb = resolve_embedder(cfg.embedder, text_columns=cfg.text_columns.split(",") if cfg.text_columns else None)
        self.x = embed(self.train_pool, emb, progress=cfg.progress, cache=True, cache_dir=str(self.work / "embeddings"))
        logger.info("embeddings of the training pool (%s): %s in %.1f s", cfg.embedder, self.x.shape,
                    time.perf_counter() - t0)
        # lengths of every training-pool row (the text the embedder saw, and the response alone)
        self.row_len = row_lengths(self.train_pool, text_columns=cfg.text_columns)
        return self.x

    def build_arms(self) -> dict[str, np.ndarray]:
        """Each seed's pool draw and the rows of every arm and seed; writes ``arms.json`` (pool row ids in
        selection order, with h and coverage radius). Returns ``{"<arm>-seed<s>": pool row ids}``.

        One cache entry per arm and seed in WORK_DIR, so adding an arm or a seed never recomputes the others.
        """
        cfg = self.cfg
        n_train = len(self.train_idx)
        self.seed_pos = seed_pools(n_train, cfg.seeds, cfg.pool_size)  # positions into the training pool
        self.k = resolve_k(cfg.k, cfg.pool_size or n_train)
        key_parts = [self.pool_digest, self.heldout_idx.tolist(), cfg.embedder, cfg.text_columns, self.k,
                     cfg.metric, cfg.pool_size, cfg.length_bins, cfg.length_measure]
        if cfg.length_matched_source != "seed_pool":  # the committed studies keep their keys
            key_parts.append(cfg.length_matched_source)
        key = stable_hash(key_parts, FINGERPRINT_LENGTH)
        arms_path = self.work / f"arms-{key}.json"
        stored = (read_json_record(arms_path, {"indices": dict, "geometry": dict}, what="study arms cache")
                  if arms_path.exists() else {"indices": {}, "geometry": {}})
        self.arm_idx, self.geometry = {}, {}
        for seed in cfg.seeds:
            pos = self.seed_pos[seed]
            xs = self.x[pos]
            order = sorted(cfg.arms, key=lambda a: a != "uniform")  # length_matched needs uniform's rows
            if "length_matched" in cfg.arms and "uniform" not in cfg.arms:
                order = ["uniform", *order]
            for arm in order:
                name = f"{arm}-seed{seed}"
                src = "full" if arm == "full" and not cfg.pool_size else name  # full does not depend on the seed
                if src not in stored["indices"]:
                    t0 = time.perf_counter()
                    if arm == "length_matched" and cfg.length_matched_source == "training_pool":
                        from ..baselines import length_matched_subset

                        # drawn from the whole training pool, uniform's rows excluded (shares none of them)
                        uni_train = np.asarray(stored["indices"][f"uniform-seed{seed}"], dtype=np.int64)
                        drawn = length_matched_subset(np.asarray(self.row_len[cfg.length_measure]), uni_train,
                                                      bins=cfg.length_bins, seed=seed, exclude_target=True)
                        stored["indices"][src] = drawn.tolist()
                        stored["geometry"][src] = arm_geometry(self.x, drawn, metric=cfg.metric)
                        atomic_write_json(arms_path, stored)
                        logger.info("arm %s: %d rows from the training pool (%.1f s)", name, len(drawn),
                                    time.perf_counter() - t0)
                        if arm in cfg.arms:
                            self.arm_idx[name] = drawn
                            self.geometry[name] = stored["geometry"][src]
                        continue
                    if arm == "length_matched":
                        from ..baselines import length_matched_subset

                        uni = np.searchsorted(pos, np.asarray(stored["indices"][f"uniform-seed{seed}"]))
                        local = length_matched_subset(self.row_len[cfg.length_measure][pos], uni,
                                                      bins=cfg.length_bins, seed=seed)
                    elif arm == "longest":
                        from ..baselines import longest_subset

                        lens = self.row_len.get("response_chars", self.row_len["text_chars"])
                        local = longest_subset(np.asarray(lens)[pos], self.k)
                    else:
                        local = build_arm_indices(xs, arm, self.k, seed, metric=cfg.metric,
                                                  method=cfg.selection_method)
                    stored["indices"][src] = pos[local].tolist()
                    stored["geometry"][src] = arm_geometry(xs, local, metric=cfg.metric)
                    atomic_write_json(arms_path, stored)
                    logger.info("arm %s: %d rows, h=%.5f, coverage radius=%.5f (%.1f s)", name, len(local),
                                stored["geometry"][src]["h"], stored["geometry"][src]["coverage_radius"],
                                time.perf_counter() - t0)
                elif arm in ("uniform", "mixed"):  # a cached selection must be what the engine picks now
                    _check_cached_selection(arms_path, name, stored["indices"][src],
                                            pos[build_arm_indices(xs, arm, self.k, seed, metric=cfg.metric,
                                                                  method=cfg.selection_method)])
                if arm in cfg.arms:
                    self.arm_idx[name] = np.asarray(stored["indices"][src], dtype=np.int64)
                    self.geometry[name] = stored["geometry"][src]
        # pool row ids (not training-pool positions) are what the report and the disjointness check use
        self.arm_rows = {name: self.train_idx[idx] for name, idx in self.arm_idx.items()}
        overlap = {name: int(np.intersect1d(rows, self.heldout_idx).size) for name, rows in self.arm_rows.items()}
        if any(overlap.values()):  # cannot happen by construction; checked because the report relies on it
            raise UniformError(f"held-out rows leaked into arms {overlap}")
        atomic_write_text(self.out / "arms.json", json.dumps(  # compact: every arm's pool rows, for auditing
            {name: {"rows": rows.tolist(), **self.geometry[name]} for name, rows in self.arm_rows.items()},
            separators=(",", ":")) + "\n")
        return self.arm_rows

    # -- models ------------------------------------------------------------------------------------------
    def _recipe(self, run_dir: Path, seed: int, data_file: Path) -> tuple[Any, Any, Any]:
        """The recipe's ``(SFTConfig, ModelConfig, UniformSFTArguments)`` for one run, with the study's data,
        evaluation and base model."""
        from ..train import parse_sft_args

        cfg = self.cfg
        argv = ["--config", cfg.recipe, *shlex.split(cfg.recipe_args), "--output_dir", str(run_dir),
                "--seed", str(seed)]
        sft, model, uargs = parse_sft_args(argv)
        if cfg.periodic_eval:
            eval_steps = cfg.eval_steps or (sft.eval_steps if sft.eval_steps and sft.eval_steps >= 1 else None) \
                or max(1, int(sft.logging_steps) * 5)
            argv += ["--eval_strategy", "steps", "--eval_steps", str(int(eval_steps)), "--eval_on_start", "true",
                     "--per_device_eval_batch_size",
                     str(max(sft.per_device_eval_batch_size, cfg.eval_batch_size))]
        else:
            argv += ["--eval_strategy", "no"]
        sft, model, uargs = parse_sft_args(argv)
        sft.disable_tqdm = not cfg.progress  # the training bar follows the study's --progress (not a setting)
        uargs.dataset_name = str(data_file)
        uargs.eval_dataset_name = str(self.heldout_file) if cfg.periodic_eval else None
        uargs.eval_size = 0.0
        uargs.uniform_k = None
        uargs.threshold_metric = "loss"
        uargs.threshold_smoothing = 0.0
        uargs.stop_at_last_threshold = False
        uargs.save_final_model = True
        uargs.measure_h = False
        if uargs.tiny_model:
            model.model_name_or_path = str(self._tiny_base(uargs, seed))
            uargs.tiny_model = False
        elif uargs.gguf_file or str(model.model_name_or_path).endswith(".gguf"):
            model.model_name_or_path = str(self._gguf_base(model.model_name_or_path, uargs.gguf_file))
            uargs.gguf_file = None
        return sft, model, uargs

    def base_model_path(self, seed: int) -> Path | str:
        """The weights every arm of ``seed`` starts from (a folder), built once and cached in WORK_DIR."""
        sft, model, uargs = self._recipe(self.work / "tmp", seed, self.heldout_file)
        return model.model_name_or_path

    def _gguf_base(self, name: str, gguf_file: str | None) -> Path:
        """Dequantise a GGUF model once into WORK_DIR/base_model/<name> (safetensors + a working tokenizer).

        transformers 5 converts the SmolLM2 GGUF tokenizer as a Metaspace (SentencePiece-style) tokenizer
        that encodes every space as ``<|endoftext|>`` (id 0) and adds a ``<|im_start|>`` BOS: the model then
        sees garbage (loss ~12 instead of ~2). The tokenizer saved here is the GGUF's byte-level BPE
        (``tokenizer.json``) with the GPT-2 byte-level pre-tokenizer, decoder and no added BOS, as the
        original SmolLM2 tokenizer; a loading of the folder costs < 1 s instead of ~30 s.
        """
        from ..train.sft import load_model_and_tokenizer, resolve_model_source

        source, gguf = resolve_model_source(name, gguf_file)
        folder = self.work / "base_model" / Path(str(gguf)).stem
        if (folder / "config.json").exists() and (folder / "tokenizer.json").exists():
            return folder
        model, tok = load_model_and_tokenizer(name, gguf_file=gguf_file, dtype="float32")
        with atomic_dir(folder, replace=True) as tmp:  # the study's own folder (a partial one is redone)
            model.save_pretrained(str(tmp))
            tok.save_pretrained(str(tmp))  # load_model_and_tokenizer repaired the GGUF tokenizer
        del model
        gc.collect()
        return folder

    def _tiny_base(self, uargs: Any, seed: int) -> Path:
        """One tiny LLaMA per seed shared by every arm: same tokenizer (trained on the training pool) and weights."""
        from ..train.data import example_texts, prepare_sft_dataset
        from ..train.tiny import build_tiny_llama

        if not hasattr(self, "_tiny_texts"):
            prepared = prepare_sft_dataset(self.train_pool, uargs.prompt_format)
            self._tiny_texts = example_texts(prepared, limit=None)
        return build_tiny_llama(self.work / "base_model" / f"seed{seed}", self._tiny_texts,
                                vocab_size=uargs.tiny_vocab_size, hidden_size=uargs.tiny_hidden_size,
                                intermediate_size=2 * uargs.tiny_hidden_size, num_hidden_layers=uargs.tiny_layers,
                                seed=seed)

    def model_description(self) -> dict[str, Any]:
        """What the arms train: the recipe's model (tiny LLaMA size and parameters, or the model id)."""
        from ..train import parse_sft_args

        _, model, uargs = parse_sft_args(["--config", self.cfg.recipe, *shlex.split(self.cfg.recipe_args),
                                          "--output_dir", str(self.work / "tmp")])
        if uargs.tiny_model:
            spec = self.work / "base_model" / f"seed{self.cfg.seeds[0]}" / "tiny_llama.json"
            extra = read_json_record(spec, what="tiny model description") if spec.exists() else {}
            desc = (f"tiny LLaMA from scratch (hidden {uargs.tiny_hidden_size}, {uargs.tiny_layers} layers, BPE "
                    f"vocabulary {extra.get('actual_vocab_size', uargs.tiny_vocab_size)}, "
                    f"{extra.get('parameters', '?')} parameters), one initialisation per seed shared by all arms")
            return {"description": desc, "tiny": True, **extra}
        return {"description": f"`{model.model_name_or_path}`" + (f" ({uargs.gguf_file})" if uargs.gguf_file else ""),
                "tiny": False}

    # -- evaluation of the base model --------------------------------------------------------------------
    def _score(self, model: Any, tok: Any, ds: Any, max_length: int | None, prompt_format: str) -> dict[str, Any]:
        from ..evaluation import checkpoint_heldout_loss

        return checkpoint_heldout_loss(model, ds, tokenizer=tok, device=self.cfg.device, max_length=max_length,
                                       prompt_format=prompt_format, batch_size=self.cfg.eval_batch_size)

    def base_eval(self, seed: int) -> dict[str, Any]:
        """Losses of the base model (step 0) of ``seed``: per pool row, held-out, second source and pool.

        Per-row losses (summed response-token cross-entropy and response-token count, each row scored alone)
        give every arm's step-0 loss as a token-weighted mean over its rows, the quantity its training loss
        starts from; relative thresholds are fractions of it. Cached in WORK_DIR/base_eval-seed<s>.json.

        The cache grows and is never narrowed: a record that holds every row the arms of this run need is
        read back whatever other rows it holds, and rows it lacks are scored and added to it (a run of one
        arm no longer replaces the record the whole study needs). Its ``seconds`` add up every scoring.
        """
        from .base_eval import base_eval

        return base_eval(self, seed)

    def base_eval_records(self) -> list[dict[str, Any]]:
        """Every ``base_eval-seed<s>.json`` in WORK_DIR (their seconds count in the study's cost)."""
        return [read_json_record(p, what="base-model evaluation") for p in sorted(self.work.glob("base_eval-seed*.json"))]

    def start_loss(self, seed: int, rows_pos: np.ndarray) -> float:
        """Step-0 loss of a run: the base model's token-weighted loss over its training rows (positions)."""
        return loss_over_rows(self.base_eval(seed), rows_pos)

    # -- one run -----------------------------------------------------------------------------------------
    def run_settings(self, arm: str, seed: int) -> dict[str, Any]:
        """Everything a finished run depends on; its hash is the record's ``fingerprint``."""
        cfg = self.cfg
        return {
            "pool": self.pool_digest, "heldout": self.heldout_idx.tolist(),
            "rows": np.sort(self.arm_rows[f"{arm}-seed{seed}"]).tolist(), "seed": seed,
            "recipe": _recipe_content(cfg.recipe), "recipe_args": cfg.recipe_args, "eval_steps": cfg.eval_steps,
            "periodic_eval": cfg.periodic_eval, "second": [cfg.second_heldout, cfg.second_heldout_size],
            "pool_loss": cfg.eval_pool_loss,
            "eval": None if cfg.skip_lm_eval else [cfg.eval_tasks, cfg.eval_limit, cfg.eval_data_dir],
            **({"schedule_steps": cfg.schedule_steps} if cfg.schedule_steps else {}),
        }

    def run_fingerprint(self, arm: str, seed: int) -> str:
        """:func:`hf_uniform.cache.stable_hash` of :meth:`run_settings`."""
        return stable_hash(self.run_settings(arm, seed), FINGERPRINT_LENGTH)

    def record_path(self, arm: str, seed: int) -> Path:
        """``OUTPUT_DIR/runs/<arm>-seed<s>.json``, the record of a finished run."""
        return self.out / "runs" / f"{arm}-seed{seed}.json"

    def other_finished_runs(self) -> list[tuple[str, int]]:
        """``(arm, seed)`` of the finished records in ``OUTPUT_DIR/runs`` outside this run's arms x seeds.

        Example:
            >>> Study(StudyConfig(pool="p.jsonl", output_dir="no_such_study")).other_finished_runs()
            []
        """
        found = []
        for path in sorted((self.out / "runs").glob("*-seed*.json")):
            arm, _, seed = path.stem.rpartition("-seed")
            if arm in ARMS and seed.isdigit() and not (arm in self.cfg.arms and int(seed) in self.cfg.seeds):
                found.append((arm, int(seed)))
        return found

    def run_one(self, arm: str, seed: int) -> dict[str, Any]:
        """Train and evaluate ``arm`` for ``seed`` and write its record, or read back the finished record.

        Raises:
            UniformError: the record was written with other settings (pool, arm rows, recipe or evaluation).
        """
        record_path = self.record_path(arm, seed)
        if not record_path.exists():
            return self._train_and_evaluate(arm, seed)
        rec = read_json_record(record_path, {"arm": str, "seed": int, "curves": dict, "final": dict},
                               what="study run record")
        if rec.get("fingerprint") != self.run_fingerprint(arm, seed):
            raise UniformError(f"{record_path} was produced with other settings (pool, arm rows, recipe or "
                               "eval); use a new --output_dir or delete that file to rerun it")
        logger.info("%s-seed%d: finished earlier, reading %s", arm, seed, record_path)
        if "tokens" not in rec["curves"]["train"] and (Path(rec["run_dir"]) / "trainer_state.json").exists():
            curves = curves_from_run(rec["run_dir"])  # a record from before token counts were kept
            rec["curves"] = {k: curves[k] for k in LOSS_KINDS}
            rec["final"]["train_tokens"] = curves["train"]["tokens"][-1] if curves["train"]["tokens"] else None
            atomic_write_json(record_path, rec)
        return rec

    def _train_and_evaluate(self, arm: str, seed: int) -> dict[str, Any]:
        from ..evaluation import load_model, run_lm_eval
        cfg = self.cfg
        key = f"{arm}-seed{seed}"
        rows = np.sort(self.arm_rows[key])  # pool order: training depends on the set of rows, not its greedy order
        data_file = self.work / "data" / (f"{arm}.jsonl" if arm == "full" and not cfg.pool_size else f"{key}.jsonl")
        _write_jsonl(self.pool.select(rows.tolist()), data_file)  # always: a file left by other settings is stale
        run_dir = self.work / "runs" / arm / f"seed{seed}"
        if run_dir.exists():
            shutil.rmtree(run_dir)  # an unfinished earlier attempt
        sft, model_args, uargs = self._recipe(run_dir, seed, data_file)
        base = self.base_eval(seed)
        start = loss_over_rows(base, self.arm_idx[key])
        logger.info("%s: training on %d rows (%s); step-0 loss %.4f", key, len(rows), run_dir, start)
        t0, c0 = time.perf_counter(), time.process_time()
        if self.train is None:
            raise UniformError("Study(cfg, train=...) needs the fine-tune to run, e.g. recipes/sft.py's main")
        schedule = self._schedule_callback(sft, uargs)
        if schedule is None:
            info = self.train(sft, model_args, uargs)  # recipes/sft.py's main
        else:
            info = self.train(sft, model_args, uargs, callbacks=[schedule])
        curves = curves_from_run(run_dir)
        if schedule is not None:
            curves["schedule"] = self._schedule_curves(curves, schedule.points, base)
        t_train, c_train = time.perf_counter() - t0, time.process_time() - c0
        gc.collect()
        t1, c1 = time.perf_counter(), time.process_time()
        final_model, final_tok = load_model(run_dir, device=cfg.device)
        scored = {"heldout": self.heldout_ds, "second": self.second_ds,
                  "pool": self.train_pool.select(self.seed_pos[seed].tolist()) if cfg.eval_pool_loss else None}
        scores = {name: None if ds is None else self._score(final_model, final_tok, ds, sft.max_length,
                                                             uargs.prompt_format) for name, ds in scored.items()}
        ho, second, pool_ho = scores["heldout"], scores["second"], scores["pool"]
        del final_model
        gc.collect()
        lm: dict[str, float] = {}
        lm_raw = None
        if not cfg.skip_lm_eval:
            res = run_lm_eval(run_dir, cfg.eval_tasks, work_dir=self.work / "lm_eval" / key,
                              data_dir=cfg.eval_data_dir, limit=cfg.eval_limit, batch_size=cfg.eval_batch_size,
                              device=cfg.device)
            lm = {f"{task}/{m}": v for task, metrics in res["scores"].items() for m, v in metrics.items()
                  if not m.endswith("_stderr")}
            lm_raw = {k: res[k] for k in ("scores", "n_samples", "n_shot", "limit", "seconds")}
        t_eval, c_eval = time.perf_counter() - t1, time.process_time() - c1
        if not cfg.keep_models:
            for p in run_dir.glob("*.safetensors"):
                p.unlink()
        train_curve = curves["train"]
        rec = {
            "arm": arm, "seed": seed, "fingerprint": self.run_fingerprint(arm, seed), "size": int(len(rows)),
            **{k: self.geometry[key][k] for k in ("h", "coverage_radius", "mean_nn_distance")},
            "final": {
                "steps": int(info["global_step"]),
                "train_loss": train_curve["value"][-1] if train_curve["value"] else None,
                "train_loss_mean": info.get("train_loss"),
                "heldout_loss": ho["loss"],
                "heldout_loss_trainer": curves["heldout"]["value"][-1] if curves["heldout"]["value"] else None,
                "heldout": ho,
                "second_heldout_loss": second["loss"] if second else None,
                "second_heldout": second,
                "pool_loss": pool_ho["loss"] if pool_ho else None,
                "pool": pool_ho,
                "train_seconds": train_curve["seconds"][-1] if train_curve["seconds"] else None,
                "train_cpu_seconds": (train_curve.get("cpu_seconds") or [None])[-1],
                "train_tokens": train_curve["tokens"][-1] if train_curve["tokens"] else None,
                "train_seconds_wall": curves["train_seconds_wall"],
                "eval_seconds_during_training": curves["eval_seconds"],
            },
            "curves": {k: curves[k] for k in LOSS_KINDS},
            "schedule": curves.get("schedule"),
            "start": {"train_loss": start, "heldout_loss": base["heldout"]["loss"],
                      "second_heldout_loss": (base.get("second_heldout") or {}).get("loss"),
                      "pool_loss": loss_over_rows(base, self.seed_pos[seed])},  # over the seed's pool
            "epochs": float(sft.num_train_epochs) if not sft.max_steps or sft.max_steps < 0 else None,
            "lm_eval": lm,
            "lm_eval_details": lm_raw,
            "seconds": {"train_call": t_train, "evaluation": t_eval},
            "cpu_seconds": {"train_call": c_train, "evaluation": c_eval},
            "run_dir": str(run_dir),
            "model": info.get("args", {}).get("model", {}).get("model_name_or_path"),
            "regime": info.get("regime"),
        }
        atomic_write_json(self.record_path(arm, seed), rec)
        return rec

    # -- the held-out schedule ---------------------------------------------------------------------------
    def _schedule_callback(self, sft: Any, uargs: Any) -> Any:
        """The held-out schedule of one run (``cfg.schedule_steps``), or ``None``."""
        if not self.cfg.schedule_steps:
            return None
        from ..evaluation import format_pairs
        from .schedule import HeldoutScheduleCallback

        sets = {"heldout": format_pairs(self.heldout_ds, uargs.prompt_format)}
        if self.second_ds is not None:
            sets["second_heldout"] = format_pairs(self.second_ds, uargs.prompt_format)
        return HeldoutScheduleCallback(sets, every=self.cfg.schedule_steps, max_length=sft.max_length,
                                       batch_size=self.cfg.eval_batch_size)

    @staticmethod
    def _schedule_curves(curves: dict[str, Any], points: list[dict[str, Any]], base: dict[str, Any]) -> dict[str, Any]:
        """The scheduled held-out curves (step 0 = the base model) with the training clock at each point,
        and the training curve's clocks with the scheduled evaluations taken out."""
        from .schedule import exclude_eval_time

        train = curves["train"]
        train["seconds"] = exclude_eval_time(train["step"], train["seconds"], points)
        train["cpu_seconds"] = exclude_eval_time(train["step"], train["cpu_seconds"], points, "eval_cpu_seconds")
        by_step = {int(s): i for i, s in enumerate(train["step"])}
        out: dict[str, Any] = {"step": [0], "tokens": [0.0], "seconds": [0.0], "cpu_seconds": [0.0],
                               "eval_seconds": [0.0], "eval_cpu_seconds": [0.0]}
        names = [n for n in ("heldout", "second_heldout") if base.get(n)]
        for name in names:
            out[name] = [float(base[name]["loss"])]
        for p in points:
            i = by_step.get(int(p["step"]))
            out["step"].append(int(p["step"]))
            for key in ("tokens", "seconds", "cpu_seconds"):
                out[key].append(None if i is None else train[key][i])
            out["eval_seconds"].append(float(p["eval_seconds"]))
            out["eval_cpu_seconds"].append(float(p["eval_cpu_seconds"]))
            for name in names:
                out[name].append((p.get(name) or {}).get("loss"))
        return out

    # -- lengths -----------------------------------------------------------------------------------------
    def lengths_report(self) -> dict[str, Any]:
        """Length summaries (:mod:`hf_uniform.lengths`) of every arm: all seeds' rows together and per seed."""
        from ..lengths import lengths_block, row_lengths

        lens = dict(self.row_len)
        try:
            from transformers import AutoTokenizer

            base = self.base_model_path(self.cfg.seeds[0])
            tok = AutoTokenizer.from_pretrained(str(base))
            tl = row_lengths(self.train_pool, text_columns=self.cfg.text_columns, tokenizer=tok)
            lens.update({k: v for k, v in tl.items() if k.endswith("_tokens")})
            token_note = f"tokens of the tokenizer of {base}"
        except (OSError, ValueError, UniformError) as err:  # no tokenizer: characters only
            token_note = f"no token counts ({str(err).splitlines()[0] if str(err) else type(err).__name__})"
        sets: dict[str, Any] = {}
        for arm in self.cfg.arms:
            sets[arm] = np.concatenate([self.arm_idx[f"{arm}-seed{s}"] for s in self.cfg.seeds])
        sets["pool (all seeds)"] = np.concatenate([self.seed_pos[s] for s in self.cfg.seeds])
        per_seed = {f"seed{s}": lengths_block(lens, {arm: self.arm_idx[f"{arm}-seed{s}"] for arm in self.cfg.arms})
                    for s in self.cfg.seeds}
        return {"measures": "text_chars: characters of the text the embedder saw (instruction, input, output "
                            "joined by newlines); response_chars: the output alone; *_tokens: " + token_note,
                "all_seeds": lengths_block(lens, sets), "per_seed": per_seed,
                "length_matched_on": self.cfg.length_measure, "length_bins": self.cfg.length_bins}
