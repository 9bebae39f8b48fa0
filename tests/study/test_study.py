"""hf-uniform compare (hf_uniform.scripts.compare, recipes/compare.py) and hf_uniform.study: the uniform / random /
mixed / full study end to end."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hf_uniform.errors import UniformError
from hf_uniform.study import (
    StudyConfig,
    aggregate,
    auto_thresholds,
    build_arm_indices,
    curves_from_run,
    first_crossing,
    mean_std,
    split_heldout,
    table_columns,
)

ROOT = Path(__file__).resolve().parents[2]

RECIPE = """\
prompt_format: alpaca
tiny_model: true
tiny_vocab_size: 400
tiny_hidden_size: 16
tiny_layers: 1
max_steps: 4
per_device_train_batch_size: 8
per_device_eval_batch_size: 16
learning_rate: 5.0e-3
lr_scheduler_type: constant
max_length: 256
logging_steps: 1
eval_steps: 2
save_strategy: "no"
report_to: none
use_cpu: true
bf16: false
fp16: false
gradient_checkpointing: false
dataset_num_proc: 1
dataloader_num_workers: 0
disable_tqdm: true
"""


def _env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               OMP_NUM_THREADS="2")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


# ---------------------------------------------------------------------------------------------------- units


def test_split_heldout_is_fixed_and_disjoint():
    ho, tr = split_heldout(100, 0.1, seed=3)
    assert len(ho) == 10 and len(tr) == 90 and not set(ho) & set(tr)
    assert sorted(np.concatenate([ho, tr]).tolist()) == list(range(100))
    ho2, _ = split_heldout(100, 0.1, seed=3)
    assert ho.tolist() == ho2.tolist()
    assert len(split_heldout(100, 25, seed=0)[0]) == 25
    for bad in (0.001, 100, 150):
        with pytest.raises(UniformError):
            split_heldout(100, bad, seed=0)


def test_arm_indices_sizes_and_uniformity():
    from hf_uniform.metrics import min_pairwise_distance

    x = np.random.default_rng(0).normal(size=(300, 8))
    idx = {a: build_arm_indices(x, a, 40, seed=1) for a in ("uniform", "random", "mixed", "full")}
    assert [len(v) for v in idx.values()] == [40, 40, 40, 300]
    assert all(len(set(v.tolist())) == len(v) for v in idx.values())
    h = {a: min_pairwise_distance(x[v]) for a, v in idx.items()}
    assert h["uniform"] > h["random"] >= h["full"] and h["uniform"] > h["mixed"]


def test_first_crossing_and_auto_thresholds():
    assert first_crossing([5, 10, 15], [1.0, 2.5, 4.0], [3.0, 2.0, 1.0], 2.0) == {
        "step": 10, "seconds": 2.5, "value": 2.0}
    assert first_crossing([5, 10], [1.0, 2.0], [3.0, 2.5], 2.0) is None
    # tight = the worst run's minimum (2.5, rounded up); loose = halfway to the lowest start (4.0)
    assert auto_thresholds([[4.0, 3.0, 2.0], [4.2, 3.5, 2.5]]) == [3.25, 2.5]
    with pytest.raises(UniformError):
        auto_thresholds([[], [float("nan")]])


def test_curves_from_run_excludes_eval_time(tmp_path):
    ttt = {"metric": "loss", "train_seconds": 30.0,
           "curve": {"step": [1, 2, 3, 4], "seconds": [5.0, 6.0, 10.0, 11.0], "value": [4.0, 3.0, 2.5, 2.0],
                     "smoothed": [4.0, 3.0, 2.5, 2.0]}}
    history = [{"eval_loss": 4.5, "eval_runtime": 4.0, "step": 0}, {"loss": 4.0, "step": 1},
               {"loss": 3.0, "step": 2}, {"eval_loss": 3.2, "eval_runtime": 3.0, "step": 2},
               {"loss": 2.5, "step": 3}, {"loss": 2.0, "step": 4}, {"eval_loss": 2.4, "eval_runtime": 3.0, "step": 4}]
    (tmp_path / "time_to_threshold.json").write_text(json.dumps(ttt))
    (tmp_path / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    c = curves_from_run(tmp_path)
    # the eval at step 0 (4 s) precedes every training point; the one at step 2 (3 s) precedes steps 3-4
    assert c["train"]["seconds"] == [1.0, 2.0, 3.0, 4.0]
    assert c["heldout"]["step"] == [0, 2, 4] and c["heldout"]["value"] == [4.5, 3.2, 2.4]
    assert c["heldout"]["seconds"] == [0.0, 2.0, 4.0]
    assert c["eval_seconds"] == 10.0
    (tmp_path / "trainer_state.json").unlink()
    with pytest.raises(UniformError, match="did not finish"):
        curves_from_run(tmp_path)


def test_aggregate_mean_std_over_seeds():
    def run(arm, seed, train, held, final):
        steps = list(range(1, len(train) + 1))
        return {"arm": arm, "seed": seed, "size": 10, "h": 0.1 * (seed + 1), "coverage_radius": 0.2,
                "curves": {"train": {"step": steps, "seconds": [2.0 * s for s in steps], "value": train},
                           "heldout": {"step": steps, "seconds": [2.0 * s for s in steps], "value": held}},
                "final": {"train_loss": train[-1], "heldout_loss": final}, "lm_eval": {"arc_challenge/acc": 0.25}}

    runs = [run("uniform", 0, [3, 2, 1], [3, 2, 1.5], 1.5), run("uniform", 1, [3, 2.5, 2], [3, 2.8, 2.2], 2.2)]
    agg = aggregate(runs, {"train": [2.0], "heldout": [2.0]}, arms=["uniform"], smoothing=0.0)["uniform"]
    steps = agg["thresholds"]["train<=2"]["steps"]
    assert steps["values"] == [2.0, 3.0] and steps["mean"] == 2.5 and steps["std"] == pytest.approx(math.sqrt(0.5))
    assert agg["thresholds"]["train<=2"]["seconds"]["mean"] == 5.0
    held = agg["thresholds"]["held-out<=2"]["steps"]
    assert held["n"] == 1 and held["of"] == 2 and held["mean"] == 2.0  # seed 1 never reached 2.0
    assert agg["final_heldout_loss"]["mean"] == pytest.approx(1.85)
    assert agg["h"]["mean"] == pytest.approx(0.15) and agg["lm_eval"]["arc_challenge/acc"]["mean"] == 0.25
    assert mean_std([None, None])["mean"] is None


def test_config_validation(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE)
    good = dict(pool="p.jsonl", recipe=str(recipe))
    StudyConfig(**good).validate()
    for bad in ({"arms": ["uniform", "best"]}, {"arms": []}, {"seeds": [0, 0]}, {"metric": "dot"},
                {"smoothing": 1.0}, {"k": 0}, {"heldout_size": 0}, {"train_thresholds": []},
                {"recipe": str(tmp_path / "missing.yaml")}, {"pool": ""}):
        with pytest.raises(UniformError):
            StudyConfig(**{**good, **bad}).validate()


def test_resolve_k_is_check_k_plus_at_least_two_rows(tmp_path):
    from hf_uniform.scripts.compare import parse_args
    from hf_uniform.selection import check_k, parse_k
    from hf_uniform.study import resolve_k

    # the one k rule: a fraction of the training pool as check_k rounds it, an int a count
    for k, n in ((0.5, 9), (0.3, 9), (0.999, 10), (0.25, 8), (6, 12), (12, 12)):
        assert resolve_k(k, n) == check_k(k, n), (k, n)
    assert resolve_k(0.3, 9) == 3 and resolve_k(0.25, 8) == 2 and resolve_k(6, 12) == 6
    for k, n in ((0.1, 9), (1, 9), (10, 9), (4.5, 9), (6.0, 12)):  # < 2 rows, > n, not whole, a float >= 1
        with pytest.raises(UniformError):
            resolve_k(k, n)
    # StudyConfig.k reads text as hf-uniform select's -k does, from the command line and from the YAML alike
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE)
    for text, want in (("128", 128), ("0.5", 0.5), ("7", 7)):
        assert parse_args(["--pool", "p.jsonl", "--recipe", str(recipe), "--k", text]).k == want == parse_k(text)
        (tmp_path / "c.yaml").write_text(f"pool: p.jsonl\nrecipe: {recipe}\nk: {text}\n")
        assert parse_args(["--config", str(tmp_path / "c.yaml")]).k == want
    for bad in ("1.0", "128.0", "0", "-3", "half"):  # refused like select -k 1.0
        with pytest.raises(UniformError):
            StudyConfig(pool="p.jsonl", recipe=str(recipe), k=bad)
    assert StudyConfig(pool="p.jsonl", recipe=str(recipe), k=4).k == 4


@pytest.mark.parametrize("name", ["smollm2_finetune", "smollm2_finetune_pilot12", "cpu_reference"])
def test_committed_report_round_trip(name, tmp_path):
    from hf_uniform.study import StudyReport, render_markdown, write_report

    path = ROOT / "reports" / name / "report.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    report = StudyReport.read(path.parent)
    assert report.to_dict() == data and list(report.to_dict()) == list(data)  # same keys, same order
    assert report.seeds == data.get("seeds", []) and report.arms == data["arms"]
    if name == "smollm2_finetune":  # written by the current renderer: report.md is its rendering of report.json
        # (the pilot and the CPU reference keep the report.md an earlier renderer wrote: historical records)
        assert render_markdown(report) == (path.parent / "report.md").read_text(encoding="utf-8")
        md = write_report(report, tmp_path)
        assert md.read_text(encoding="utf-8") == (path.parent / "report.md").read_text(encoding="utf-8")
        assert json.loads((tmp_path / "report.json").read_text(encoding="utf-8")) == data
    with pytest.raises(UniformError, match="unknown keys"):
        StudyReport.from_dict({**data, "not_a_field": 1})


# ------------------------------------------------------------------------------------------------- the study


@pytest.mark.slow
def test_compare_end_to_end_and_resume(shared_data, tmp_path, capsys):
    src = shared_data("instruct/alpaca_9k.jsonl")
    pool = tmp_path / "pool200.jsonl"
    pool.write_text("".join(line for _, line in zip(range(200), src.open(encoding="utf-8"), strict=False)))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE)
    out = tmp_path / "study"
    cmd = [sys.executable, str(ROOT / "recipes" / "compare.py"), "--pool", str(pool), "--k", "60",
           "--recipe", str(recipe), "--seeds", "0", "1", "--heldout_size", "40", "--output_dir", str(out),
           "--eval_tasks", "arc_challenge:2,truthfulqa_mc1:0,truthfulqa_mc2:0", "--eval_limit", "2",
           "--eval_data_dir", str(shared_data("eval")), "--eval_batch_size", "8", "--num_threads", "2",
           "--progress", "false", "--keep_models", "false"]
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]

    report = json.loads((out / "report.json").read_text())
    md = (out / "report.md").read_text()
    # every arm, both seeds; sizes as asked; the held-out split comes first and is disjoint from every arm
    assert list(report["arms"]) == ["uniform", "random", "mixed", "full"]
    assert report["pool"] == {**report["pool"], "rows": 200, "heldout_rows": 40, "train_rows": 160, "k": 60}
    split = json.loads((out / "split.json").read_text())
    heldout = set(split["heldout"])
    assert len(heldout) == 40
    arms = json.loads((out / "arms.json").read_text())
    assert sorted(arms) == sorted(f"{a}-seed{s}" for a in ("uniform", "random", "mixed", "full") for s in (0, 1))
    for key, rec in arms.items():
        rows = set(rec["rows"])
        assert not rows & heldout, key
        assert len(rows) == (160 if key.startswith("full") else 60) == len(rec["rows"])
        assert all(0 <= r < 200 for r in rows)
    assert arms["uniform-seed0"]["h"] > arms["random-seed0"]["h"]  # max-min is more spread out
    assert arms["uniform-seed0"]["coverage_radius"] < arms["random-seed0"]["coverage_radius"]
    assert arms["full-seed0"]["coverage_radius"] == pytest.approx(0.0, abs=1e-9)

    # per-run records: training went through recipes/sft.py's main (4 steps), held-out curve from step 0, lm-eval scores
    assert len(report["runs"]) == 8
    for run in report["runs"]:
        assert run["final"]["steps"] == 4
        assert run["curves"]["train"]["step"] == [1, 2, 3, 4]
        assert run["curves"]["heldout"]["step"] == [0, 2, 4]
        assert all(math.isfinite(v) and v > 0 for v in run["curves"]["heldout"]["value"])
        assert run["final"]["heldout_loss"] == pytest.approx(run["final"]["heldout_loss_trainer"], rel=0.05)
        assert run["final"]["heldout"]["examples"] == 40
        for metric, value in run["lm_eval"].items():
            assert 0.0 <= value <= 1.0, (metric, value)
        assert set(run["lm_eval"]) == {"arc_challenge/acc", "arc_challenge/acc_norm", "truthfulqa_mc1/acc",
                                       "truthfulqa_mc2/acc"}
    # same base model per seed for every arm: identical held-out loss at step 0 within a seed
    for seed in (0, 1):
        starts = {r["curves"]["heldout"]["value"][0] for r in report["runs"] if r["seed"] == seed}
        assert max(starts) - min(starts) < 1e-6

    # the table: every column, one row per arm, mean ± std over the two seeds
    th = report["thresholds"]
    assert len(th["train"]) >= 1 and len(th["heldout"]) >= 1 and th["source"] == "automatic"
    cols = table_columns(th, report["lm_metrics"])
    for col in ("arm", "size", "h", "coverage radius", "final train loss", "final held-out loss",
                "arc_challenge/acc", "arc_challenge/acc_norm", "truthfulqa_mc1/acc", "truthfulqa_mc2/acc"):
        assert col in cols
    assert sum(c.startswith("steps to train<=") for c in cols) == len(th["train"])
    assert sum(c.startswith("seconds to held-out<=") for c in cols) == len(th["heldout"])
    header = next(line for line in md.splitlines() if line.startswith("| arm | size |"))
    assert header == "| " + " | ".join(cols) + " |"
    for arm in ("uniform", "random", "mixed", "full"):
        row = next(line for line in md.splitlines() if line.startswith(f"| {arm} |"))
        assert row.count("|") == len(cols) + 1 and "±" in row
    assert "Did uniform reach the thresholds sooner?" in md and "Held-out loss <=" in md
    assert "21.3" in md and "231.3" in md  # the paper's numbers for context
    assert "python recipes/compare.py" in md

    # the plots exist and are PNGs
    plots = report["plots"]
    assert len(plots) == 9  # PCA, 4 loss curves, steps/seconds/tokens/CPU seconds to threshold
    for rel in plots.values():
        data = (out / rel).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, rel
        assert f"]({rel})" in md

    # resume: a rerun trains nothing and reads every run back
    # (the reruns go through `hf-uniform compare` in this process: the same code as recipes/compare.py)
    from hf_uniform.cli import main

    capsys.readouterr()
    code = main(["compare", *cmd[2:]])
    err = capsys.readouterr().err
    assert code == 0, err[-4000:]
    assert err.count("finished earlier") == 8 and "training on" not in err
    report2 = json.loads((out / "report.json").read_text())
    assert report2["arms"]["uniform"]["final_heldout_loss"] == report["arms"]["uniform"]["final_heldout_loss"]

    # a rerun with other settings into the same folder is refused in one line
    bad = [*cmd, "--recipe_args", "--max_steps 5"]
    assert main(["compare", *bad[2:]]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(err) == 1 and err[0].startswith("hf-uniform compare: error:") and "other settings" in err[0]


@pytest.mark.slow
def test_compare_bad_input_exits_2(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "recipes" / "compare.py"), "--pool", "p.jsonl", "--recipe",
                           str(tmp_path / "none.yaml")], cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2
    assert [line for line in proc.stderr.splitlines() if line.startswith("compare: error:")] == [
        f"compare: error: recipe {tmp_path / 'none.yaml'} not found; pass an SFT recipe YAML"]


def test_hf_uniform_compare_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    from hf_uniform.cli import main
    from hf_uniform.scripts.compare import parse_args

    assert main(["compare", "--pool", "p.jsonl", "--recipe", str(tmp_path / "none.yaml")]) == 2
    assert [line for line in capsys.readouterr().err.splitlines() if "error:" in line] == [
        f"hf-uniform compare: error: recipe {tmp_path / 'none.yaml'} not found; pass an SFT recipe YAML"]
    # the report's reproducing command names the entry point that ran, without --report_only
    argv = ["--pool", "p.jsonl", "--report_only", "true", "--k", "5"]
    assert parse_args(argv).command == "hf-uniform compare --pool p.jsonl --k 5"
    assert parse_args(argv, command="python recipes/compare.py").command == "python recipes/compare.py --pool p.jsonl --k 5"


# ------------------------------------------------------------------- the fine-tuning study design (tiny LLaMA)

FT_RECIPE = """\
prompt_format: alpaca
tiny_model: true
tiny_vocab_size: 300
tiny_hidden_size: 16
tiny_layers: 1
num_train_epochs: 3
per_device_train_batch_size: 2
learning_rate: 2.0e-2
lr_scheduler_type: constant
max_grad_norm: 0.0
max_length: 512
logging_steps: 1
save_strategy: "no"
report_to: none
use_cpu: true
bf16: false
fp16: false
gradient_checkpointing: false
dataset_num_proc: 1
dataloader_num_workers: 0
disable_tqdm: true
"""


def _moving_average(values, steps, window):
    """Independent brute force of the trailing moving average over ``window`` steps."""
    return [float(np.mean([v for s, v in zip(steps[:i + 1], values[:i + 1], strict=True) if s > steps[i] - window]))
            for i in range(len(values))]


def _compare_recipe():
    """hf_uniform.scripts.compare: its main(cfg) is the study's driver."""
    from hf_uniform.scripts import compare

    return compare


@pytest.mark.slow
def test_finetune_study_design(shared_data, tmp_path):
    from hf_uniform.baselines import length_bins

    src = shared_data("instruct/alpaca_9k.jsonl")
    pool = tmp_path / "pool.jsonl"
    lines = [line for _, line in zip(range(120), src.open(encoding="utf-8"), strict=False)]
    pool.write_text("".join(lines), encoding="utf-8")
    rows = [json.loads(line) for line in lines]
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(FT_RECIPE)
    cfg = StudyConfig(pool=str(pool), recipe=str(recipe), k=4, pool_size=8, heldout_size=10, seeds=[0, 1],
                      arms=["uniform", "random", "length_matched"], relative_thresholds=[0.99, 0.9],
                      train_thresholds=[5.5], window=2, length_bins=2, periodic_eval=False, eval_pool_loss=True,
                      second_heldout=str(shared_data("instruct/dolly_3k.jsonl")), second_heldout_size=6,
                      skip_lm_eval=True, output_dir=str(tmp_path / "study"), num_threads=2, progress=False,
                      eval_batch_size=4)
    report = _compare_recipe().main(cfg).to_dict()

    for key in ("model", "epochs", "seeds", "arms", "thresholds", "paired_differences", "lengths"):
        assert key in report, key
    assert report["epochs"] == 3.0 and report["seeds"] == [0, 1]
    assert list(report["arms"]) == ["uniform", "random", "length_matched"]
    # thresholds are the declared ones, nothing chosen after the runs
    th = report["thresholds"]
    assert th["train_relative"] == [0.99, 0.9] and th["train"] == [5.5] and th["heldout"] == []
    assert th["source"] == "declared in the config before the runs"

    heldout = set(json.loads((tmp_path / "study" / "split.json").read_text())["heldout"])
    arms = json.loads((tmp_path / "study" / "arms.json").read_text())
    pools = {}
    work = tmp_path / "study" / "work"
    for seed in (0, 1):
        base = json.loads((work / f"base_eval-seed{seed}.json").read_text())
        train_rows = json.loads((tmp_path / "study" / "split.json").read_text())
        rest = sorted(set(range(120)) - heldout)
        full = {rest[p] for p in base["rows"]}  # the seed's pool, as pool row numbers
        assert len(full) == 8 and not full & heldout and train_rows["train_rows"] == 110
        pools[seed] = full
        for arm in ("uniform", "random", "length_matched"):
            r = arms[f"{arm}-seed{seed}"]["rows"]
            assert len(r) == len(set(r)) == 4 and set(r) <= full  # drawn from the seed's own pool
        # the length-matched arm has the uniform arm's histogram over quantile bins of the seed pool's lengths
        order = sorted(full)
        text_len = np.array([len("\n".join(v for v in (rows[i]["instruction"], rows[i]["input"], rows[i]["output"])
                                           if v)) for i in order])
        b = length_bins(text_len, 2)
        pos = {r: i for i, r in enumerate(order)}
        hist = {arm: np.bincount(b[[pos[r] for r in arms[f"{arm}-seed{seed}"]["rows"]]], minlength=b.max() + 1)
                for arm in ("uniform", "length_matched")}
        assert hist["uniform"].tolist() == hist["length_matched"].tolist()
    assert pools[0] != pools[1]  # each seed draws its own pool

    runs = {(r["arm"], r["seed"]): r for r in report["runs"]}
    for (arm, seed), r in runs.items():
        c = r["curves"]["train"]
        assert len(c["step"]) == r["final"]["steps"] == 6  # 3 epochs of 4 rows at batch 2
        assert all(v is not None and v >= 0 for v in c["cpu_seconds"]) and c["tokens"][-1] > 0
        # crossings recomputed by brute force: moving average over 2 steps, first value <= threshold, on a full
        # window whose losses all come after an update (the default rule): the window ending at step s holds
        # steps s-1 and s, the loss logged at step s-1 is computed after s-2 updates, so s >= 3
        ma = _moving_average(c["value"], c["step"], 2)
        for label, t in (("train<=0.99x start", 0.99 * r["start"]["train_loss"]),
                         ("train<=0.9x start", 0.9 * r["start"]["train_loss"]), ("train<=5.5", 5.5)):
            first = next((i for i, v in enumerate(ma) if c["step"][i] >= 3 and v <= t), None)
            got = r["crossings"][label]
            if first is None:
                assert got is None, (arm, seed, label)
            else:
                assert got["step"] == c["step"][first] and got["tokens"] == c["tokens"][first]
                assert got["cpu_seconds"] == c["cpu_seconds"][first]
        for key in ("heldout_loss", "second_heldout_loss", "pool_loss"):
            assert math.isfinite(r["final"][key]) and r["final"][key] > 0
        assert r["final"]["second_heldout"]["examples"] == 6 and r["final"]["pool"]["examples"] == 8
    # every arm of a seed starts from the same base model; its step-0 loss is the token-weighted base loss of its rows
    for seed in (0, 1):
        base = json.loads((work / f"base_eval-seed{seed}.json").read_text())
        rest = sorted(set(range(120)) - heldout)
        where = {rest[p]: i for i, p in enumerate(base["rows"])}
        for arm in ("uniform", "random", "length_matched"):
            i = [where[r] for r in arms[f"{arm}-seed{seed}"]["rows"]]
            want = sum(base["loss_sum"][j] for j in i) / sum(base["tokens"][j] for j in i)
            assert runs[(arm, seed)]["start"]["train_loss"] == pytest.approx(want)
        assert len({runs[(a, seed)]["start"]["heldout_loss"] for a in ("uniform", "random", "length_matched")}) == 1

    # paired differences, by hand
    pd = report["paired_differences"]
    assert set(pd) == {"uniform-random", "uniform-length_matched"}
    for other in ("random", "length_matched"):
        rec = pd[f"uniform-{other}"]
        want = [runs[("uniform", s)]["final"]["heldout_loss"] - runs[(other, s)]["final"]["heldout_loss"]
                for s in (0, 1)]
        assert rec["final_heldout_loss"]["values"] == pytest.approx(want)
        assert rec["final_heldout_loss"]["mean"] == pytest.approx(np.mean(want))
        assert rec["final_heldout_loss"]["std"] == pytest.approx(np.std(want, ddof=1))
        for label in ("train<=0.99x start", "train<=0.9x start", "train<=5.5"):
            vals = []
            for s in (0, 1):
                a, b = runs[("uniform", s)]["crossings"][label], runs[(other, s)]["crossings"][label]
                vals.append(None if a is None or b is None else a["step"] - b["step"])
            assert rec["thresholds"][label]["steps"]["values"] == vals
    # lengths: every arm, all seeds together, text and response characters
    la = report["lengths"]["all_seeds"]
    assert {"uniform", "random", "length_matched", "pool (all seeds)"} <= set(la)
    want = np.mean([len(rows[i]["output"]) for s in (0, 1) for i in arms[f"uniform-seed{s}"]["rows"]])
    assert la["uniform"]["response_chars"]["mean"] == pytest.approx(want, abs=1e-3)
    md = (tmp_path / "study" / "report.md").read_text()
    # no primary outcome declared: no verdict, exploratory paired differences with their p-values
    assert md.splitlines()[2] == "## No verdict: no primary outcome was declared"
    assert "No primary outcome was declared before the runs, so this report states no verdict" in md
    assert "paired t, 2 seeds" in md and "seed spread" not in md
    assert "uniform vs length_matched" in md and "min process CPU" in md


def test_study_uniform_arm_is_the_exact_greedy_and_a_stale_arms_cache_is_refused(tmp_path):
    """The uniform arm a study trains on is the float64 greedy replay on the study's own embeddings, and a cached
    arm that is not (a cache written by another embedding or version) stops the study with one line."""
    from hf_uniform.engine.reference import reference_select
    from hf_uniform.study import Study

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(60)]
    rows = [{"instruction": " ".join(rng.choice(words, 6)), "input": "", "output": " ".join(rng.choice(words, 9))}
            for _ in range(90)]
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE)
    cfg = StudyConfig(pool=str(pool), recipe=str(recipe), k=12, pool_size=40, heldout_size=10, seeds=[0, 1],
                      arms=["uniform", "random", "mixed"], output_dir=str(tmp_path / "study"), progress=False)
    cfg.validate()
    study = Study(cfg, train=None)
    study.load_pool()
    study.embed_pool()
    study.build_arms()
    for seed in (0, 1):
        pos = study.seed_pos[seed]
        got = list(study.arm_idx[f"uniform-seed{seed}"])
        start = [int(p) for p in pos].index(got[0])  # the seeded start row
        want, _ = reference_select(study.x[pos], 12, metric="cosine", start=[start])
        assert got == [int(pos[i]) for i in want]

    cache = next((tmp_path / "study" / "work").glob("arms-*.json"))
    stored = json.loads(cache.read_text())
    uni = stored["indices"]["uniform-seed1"]
    outside = next(int(p) for p in study.seed_pos[1] if int(p) not in uni)
    stored["indices"]["uniform-seed1"] = [*uni[:-1], outside]  # one row that no selection picks
    cache.write_text(json.dumps(stored))
    with pytest.raises(UniformError, match=r"cached rows of uniform-seed1 .* \(1 of 12 rows differ\); delete"):
        _rebuild(cfg)


def _rebuild(cfg):
    from hf_uniform.study import Study

    study = Study(cfg, train=None)
    study.load_pool()
    study.embed_pool()
    return study.build_arms()
