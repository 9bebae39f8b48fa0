"""Issue 21 item 4: ``radius=``, ``group_by=`` with quotas, ``tie_break="random"`` and the full greedy order,
each replayed on every engine against the float64 oracle (:func:`hf_uniform.engine.reference.reference_select`),
which implements the rules independently (no permutation, no exclusion: a plain argmax with a mask and a key).
"""

from __future__ import annotations

import numpy as np
import pytest
from test_exact import replay

from hf_uniform import UniformError, maxmin_select
from hf_uniform.engine.reference import reference_select
from hf_uniform.engine.rules import tie_priority
from hf_uniform.selection import uniform_rank

VARIANTS = [("lazy", {}), ("lazy", {"max_memory": 400_000, "chunk_size": 97}), ("plain", {}),
            ("plain", {"max_memory": 256, "chunk_size": 97}), ("sweep", {})]
IDS = ["lazy", "lazy-streamed", "plain", "plain-streamed", "sweep"]


def _data() -> np.ndarray:
    rng = np.random.default_rng(7)
    base = rng.normal(size=(260, 5)).astype(np.float32)
    return np.concatenate([base, base[:60], base[:20] * 2]).astype(np.float32)  # duplicates and scaled copies


X = _data()
GROUPS = np.random.default_rng(8).choice(["en", "de", "fr", "code"], size=len(X), p=[0.5, 0.2, 0.2, 0.1])


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize(("method", "kw"), VARIANTS, ids=IDS)
def test_radius_stops_at_the_coverage_target(method, kw, metric):
    r = 0.15 if metric == "cosine" else 0.9
    sel = maxmin_select(X, metric=metric, start=[4], radius=r, method=method, **kw)
    want, radii = reference_select(X, len(X), metric=metric, start=[4], radius=r)
    assert sel.indices.tolist() == want
    np.testing.assert_array_equal(sel.min_distances, radii)
    assert 1 < sel.k < len(X) and sel.min_distances[-1] > r >= sel.coverage_radius
    full, fr = reference_select(X, sel.k + 1, metric=metric, start=[4])
    assert sel.coverage_radius == fr[-1]  # the value of the step that was not taken
    capped = maxmin_select(X, 5, metric=metric, start=[4], radius=r, method=method, **kw)
    assert capped.indices.tolist() == want[:5]  # k is a cap


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize(("method", "kw"), VARIANTS, ids=IDS)
def test_group_quotas_replay(method, kw, metric):
    sel = maxmin_select(X, 90, metric=metric, start=[0], group_by=GROUPS, method=method, **kw)
    sizes = {g: int((GROUPS == g).sum()) for g in ("en", "de", "fr", "code")}
    assert sizes == {"en": 178, "de": 61, "fr": 75, "code": 26}
    quotas = {"en": 47, "de": 16, "fr": 20, "code": 7}  # 90 * size / 340: floors 47/16/19/6, +1 to .88, .85
    assert sel.info["quotas"] == quotas
    want, radii = reference_select(X, 90, metric=metric, start=[0], groups=GROUPS, quotas=quotas)
    assert sel.indices.tolist() == want
    np.testing.assert_array_equal(sel.min_distances, radii)
    picked = GROUPS[sel.indices]
    assert {g: int((picked == g).sum()) for g in quotas} == quotas
    assert np.isnan(sel.coverage_radius) and sel.to_dict()["coverage_radius"] is None  # every group full
    given = {"en": 3, "code": 7}
    sel = maxmin_select(X, metric=metric, start=[0], group_by=GROUPS, quotas=given, method=method, **kw)
    want, _ = reference_select(X, 10, metric=metric, start=[0], groups=GROUPS, quotas=given)
    assert sel.indices.tolist() == want and sel.k == 10


@pytest.mark.parametrize(("method", "kw"), VARIANTS, ids=IDS)
def test_random_tie_break_is_seeded_and_exact(method, kw):
    eye = np.eye(60, dtype=np.float32)  # one-hot: every step after the first is a 59-way tie
    lowest = maxmin_select(eye, 10, start=[5], method=method, **kw)
    assert lowest.indices.tolist() == [5, 0, 1, 2, 3, 4, 6, 7, 8, 9]
    runs = {}
    for seed in (0, 1):
        sel = maxmin_select(eye, 10, start=[5], seed=seed, tie_break="random", method=method, **kw)
        want, _ = reference_select(eye, 10, start=[5], priority=tie_priority(60, seed))
        assert sel.indices.tolist() == want
        runs[seed] = sel.indices.tolist()
    assert runs[0] != runs[1] and runs[0] != lowest.indices.tolist()
    sel = maxmin_select(X, 120, start=[3], seed=2, tie_break="random", method=method, **kw)
    want, radii = reference_select(X, 120, start=[3], priority=tie_priority(len(X), 2))
    assert sel.indices.tolist() == want
    np.testing.assert_array_equal(sel.min_distances, radii)


@pytest.mark.parametrize(("method", "kw"), VARIANTS, ids=IDS)
def test_rules_combine(method, kw):
    sel = maxmin_select(X, 80, start=[1], seed=4, tie_break="random", group_by=GROUPS, radius=0.05, method=method,
                        **kw)
    q = {g: int(v) for g, v in sel.info["quotas"].items()}
    want, _ = reference_select(X, 80, start=[1], priority=tie_priority(len(X), 4), groups=GROUPS, quotas=q,
                               radius=0.05)
    assert sel.indices.tolist() == want


@pytest.mark.parametrize("tie_break", ["lowest", "random"])
@pytest.mark.parametrize("method", ["lazy", "plain"])
def test_full_greedy_order_stops_at_radius_zero(method, tie_break):
    rank = uniform_rank(X, start=[0], method=method, tie_break=tie_break, seed=3)
    pri = tie_priority(len(X), 3) if tie_break == "random" else None
    want, radii = reference_select(X, len(X), start=[0], priority=pri)
    assert np.argsort(rank).tolist() == want
    assert (radii[1:] == 0).sum() == 80  # the 60 duplicates and 20 scaled copies: the tail the shortcut skips
    if tie_break == "lowest":
        replay(X, "cosine", want, radii, 1)


def test_rule_errors_are_one_line():
    cases = [({"radius": -1.0}, "radius"), ({"radius": float("nan")}, "radius"), ({"tie_break": "first"}, "tie_break"),
             ({"quotas": {"en": 1}}, "group_by"), ({"group_by": GROUPS[:5], "k": 5}, "labels for"),
             ({"group_by": GROUPS, "quotas": {"en": 1000}}, "exceeds"), ({"group_by": GROUPS, "quotas": {"xx": 1}}, "no row"),
             ({"group_by": GROUPS, "quotas": {"en": 2}, "k": 5}, "add up"),
             ({"group_by": GROUPS, "quotas": {"en": 2}, "start": [int(np.flatnonzero(GROUPS == "de")[0])]}, "quota"),
             ({}, "pass k")]
    for kw, match in cases:
        with pytest.raises(UniformError, match=match) as err:
            maxmin_select(X, **kw)
        assert "\n" not in str(err.value)


def test_seeded_start_avoids_groups_with_no_quota():
    for seed in range(5):
        sel = maxmin_select(X, seed=seed, group_by=GROUPS, quotas={"code": 3})
        assert set(GROUPS[sel.indices].tolist()) == {"code"}


def test_every_entry_point_takes_the_rules(tmp_path, capsys):
    import json

    from datasets import Dataset

    from hf_uniform.cli import main
    from hf_uniform.integration import filter_uniform

    rows = [{"id": i, "lang": str(GROUPS[i]), "emb": X[i].tolist()} for i in range(len(X))]
    ds = Dataset.from_list(rows)
    quotas = {"en": 6, "de": 3, "fr": 2, "code": 1}
    want = maxmin_select(X, start=[0], group_by=GROUPS, quotas=quotas, tie_break="random", seed=5)
    sub = filter_uniform(ds, embedding_column="emb", group_by="lang", quotas=quotas, tie_break="random", seed=5,
                         start=0, progress=False)
    assert sub["id"][:] == want.indices.tolist()
    want_r = maxmin_select(X, 340, start=[0], radius=0.2)
    assert filter_uniform(ds, embedding_column="emb", radius=0.2, start=0, progress=False)["id"][:] == \
        want_r.indices.tolist()
    src = tmp_path / "pool.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["select", str(src), "-k", "12", "-o", str(tmp_path / "a"), "--embedding-column", "emb", "--start",
                 "0", "--group-by", "lang", "--quotas", "en=6,de=3,fr=2,code=1", "--tie-break", "random", "--seed",
                 "5", "--no-plot"]) == 0
    rec = json.loads((tmp_path / "a" / "selection.json").read_text())
    assert rec["indices"] == want.indices.tolist() and "--group-by lang" in rec["command"]
    assert main(["select", str(src), "-k", "340", "-o", str(tmp_path / "b"), "--embedding-column", "emb",
                 "--start", "0", "--radius", "0.2", "--no-plot"]) == 0
    rec = json.loads((tmp_path / "b" / "selection.json").read_text())
    assert rec["indices"] == want_r.indices.tolist() and rec["k"] == want_r.k < 340
    for bad in (["--quotas", "en=x"], ["--radius", "-1"], ["--group-by", "nope"], ["--quotas", "en=1"]):
        code = main(["select", str(src), "-k", "5", "-o", str(tmp_path / "c"), "--embedding-column", "emb",
                     "--no-plot", *bad])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len([line for line in err if "error" in line]) == 1, (bad, err)


def _rules_worker(rank: int, world: int, tmp: str) -> None:
    import json
    import os
    from pathlib import Path

    import torch.distributed as dist

    os.environ["HF_UNIFORM_THREADS"] = "1"
    dist.init_process_group("gloo", init_method=f"file://{tmp}/init", rank=rank, world_size=world)
    try:
        out = {}
        for method in ("lazy", "plain"):
            for name, kw in RULE_CASES.items():
                sel = maxmin_select(X, start=[2], method=method, distributed=True, **kw)
                out[f"{method}/{name}"] = sel.indices.tolist()
        (Path(tmp) / f"rank{rank}.json").write_text(json.dumps(out))
    finally:
        dist.destroy_process_group()


RULE_CASES = {"radius": {"radius": 0.1}, "groups": {"k": 60, "group_by": GROUPS},
              "random": {"k": 100, "tie_break": "random", "seed": 9},
              "all": {"k": 80, "group_by": GROUPS, "radius": 0.05, "tie_break": "random", "seed": 1}}


@pytest.mark.slow
def test_two_gloo_ranks_apply_the_rules_like_one_process(tmp_path):
    import json

    import torch.multiprocessing as mp

    mp.spawn(_rules_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for method in ("lazy", "plain"):
        for name, kw in RULE_CASES.items():
            one = maxmin_select(X, start=[2], method=method, **kw).indices.tolist()
            assert ranks[0][f"{method}/{name}"] == ranks[1][f"{method}/{name}"] == one, (method, name)


@pytest.mark.parametrize("method", ["lazy", "plain"])
def test_an_interrupted_grouped_run_resumes_to_the_same_selection(method, tmp_path, monkeypatch):
    from hf_uniform.engine import driver

    kw = {"k": 70, "group_by": GROUPS, "tie_break": "random", "seed": 3, "start": [0], "method": method}
    want = maxmin_select(X, **kw).indices.tolist()
    count = driver._Quota.count

    def crash(self, picked):
        count(self, picked)
        if int(self.taken.sum()) == 45:
            raise RuntimeError("killed")

    monkeypatch.setattr(driver._Quota, "count", crash)
    with pytest.raises(RuntimeError, match="killed"):
        maxmin_select(X, checkpoint_dir=str(tmp_path), checkpoint_every=10, **kw)
    monkeypatch.setattr(driver._Quota, "count", count)
    sel = maxmin_select(X, checkpoint_dir=str(tmp_path), checkpoint_every=10, resume=True, **kw)
    assert sel.info["resumed_from_step"] == 40 and sel.indices.tolist() == want
    other = maxmin_select(X, checkpoint_dir=str(tmp_path / "x"), **{**kw, "seed": 4})
    assert other.indices.tolist() != want  # the seed of the tie-break is part of the run
    with pytest.raises(UniformError):  # a checkpoint of other rules is not resumed
        maxmin_select(X, checkpoint_dir=str(tmp_path), checkpoint_every=10, resume=True, radius=0.01, **kw)
