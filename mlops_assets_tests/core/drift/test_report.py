"""The drift engine: calibration (false alarms, power), the profile artifact, the report
shape, Parquet / streaming paths and the HTML (fixed seeds)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlops_assets.core import drift
from mlops_assets.core.io import DataError, canonical_json, md5_file

CATS = np.array(["a", "b", "c", "d", "e", "f"])
CAT_P = np.array([0.3, 0.25, 0.2, 0.1, 0.1, 0.05])


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame({
        "normal": rng.normal(shift, 1, size=n),
        "lognormal": rng.lognormal(0, 0.8, size=n),
        "count": rng.poisson(3, size=n).astype(np.int64),
        "cat": CATS[rng.choice(6, size=n, p=CAT_P)],
    })


def _report(ref: pd.DataFrame, cur: pd.DataFrame, **kw) -> dict:
    profile = drift.build_reference_profile(ref, kw.pop("columns", None), **kw)
    return drift.drift_report(profile, cur)


def test_false_alarms_at_most_one_percent_across_sizes() -> None:
    """>= 200 no-drift pairs from one distribution, 1k .. 1M rows: the default decision
    flags at most 1% of the features (and the dataset severity stays 'none' almost always)."""
    rng = np.random.default_rng(2024)
    sizes = [1000] * 90 + [3000] * 60 + [10000] * 30 + [30000] * 12 + [100000] * 6 + [1000000] * 2
    flagged = total = not_none = 0
    for n in sizes:
        m = int(n * rng.uniform(0.5, 1.5))
        rep = _report(_frame(rng, n), _frame(rng, m))
        flagged += rep["n_drifted"]
        total += rep["n_features"]
        not_none += rep["severity"] != "none"
    assert len(sizes) >= 200
    assert flagged / total <= 0.01, (flagged, total)
    assert not_none / len(sizes) <= 0.03


def test_power_tenth_sigma_shift_at_100k_is_flagged() -> None:
    rng = np.random.default_rng(1)
    rep = _report(_frame(rng, 100_000), _frame(rng, 100_000, shift=0.1))
    f = {e["name"]: e for e in rep["features"]}
    assert f["normal"]["drifted"] and f["normal"]["method"] == "ks"
    assert 0.03 < f["normal"]["ks_d"] < 0.05
    assert f["normal"]["wasserstein_norm"] == pytest.approx(0.1, abs=0.02)
    assert not f["lognormal"]["drifted"] and not f["cat"]["drifted"]
    assert rep["drifted_features"] == ["normal"]


def test_large_n_trivial_shift_is_not_flagged_although_p_is_tiny() -> None:
    """At 500k rows a 0.02 sd shift has a p-value near 1e-13 but an effect far below the
    threshold: not drift."""
    rng = np.random.default_rng(2)
    ref = pd.DataFrame({"x": rng.normal(size=500_000)})
    cur = pd.DataFrame({"x": rng.normal(0.02, 1, size=500_000)})
    e = _report(ref, cur)["features"][0]
    assert e["p_value"] < 1e-6
    assert e["effect_size"] < e["threshold"]
    assert not e["drifted"]


def test_category_share_10_to_15_percent_is_flagged() -> None:
    rng = np.random.default_rng(3)
    cats = np.array(["x", "y", "z", "w"])
    ref = pd.DataFrame({"c": cats[rng.choice(4, size=50_000, p=[0.1, 0.3, 0.3, 0.3])]})
    cur = pd.DataFrame({"c": cats[rng.choice(4, size=50_000, p=[0.15, 0.2833, 0.2833, 0.2834])]})
    rep = _report(ref, cur)
    e = rep["features"][0]
    assert e["type"] == "categorical" and e["method"] == "chi2"
    assert e["drifted"] and e["effect_size"] >= e["threshold"]
    assert rep["severity"] in ("moderate", "significant")
    # and the same distribution does not flag
    same = pd.DataFrame({"c": cats[rng.choice(4, size=50_000, p=[0.1, 0.3, 0.3, 0.3])]})
    assert not _report(ref, same)["features"][0]["drifted"]


def test_correlation_flip_with_unchanged_marginals_is_caught_by_multivariate() -> None:
    rng = np.random.default_rng(4)

    def make(n: int, rho: float) -> pd.DataFrame:
        z = rng.normal(size=(n, 4))
        return pd.DataFrame({"a": z[:, 0], "b": rho * z[:, 0] + np.sqrt(1 - rho**2) * z[:, 1],
                             "c": z[:, 2], "d": z[:, 3]})

    ref, cur = make(50_000, 0.8), make(50_000, -0.8)
    rep = _report(ref, cur)
    assert rep["n_drifted"] == 0  # marginals unchanged: per-feature tests see nothing
    mv = rep["multivariate"]
    assert mv["available"] and mv["drifted"] and mv["effect_size"] > 0.5
    assert rep["severity"] == "significant"
    assert not _report(ref, make(50_000, 0.8))["multivariate"]["drifted"]


def test_missing_share_unseen_categories_and_all_null_current_column() -> None:
    rng = np.random.default_rng(5)
    ref = _frame(rng, 20_000)
    cur = _frame(rng, 20_000)
    cur.loc[: 3999, "lognormal"] = np.nan
    cur.loc[: 999, "cat"] = "brand_new"
    cur["count"] = pd.array([None] * len(cur), dtype="Int64")
    rep = _report(ref, cur)
    f = {e["name"]: e for e in rep["features"]}
    assert f["lognormal"]["missing_share_cur"] == pytest.approx(0.2)
    assert f["lognormal"]["missing_drifted"] and f["lognormal"]["drifted"]
    assert f["cat"]["unseen_categories"] == ["brand_new"]
    assert f["cat"]["unseen_share"] == pytest.approx(0.05)
    assert f["cat"]["level"] == "significant"
    labels = [b["label"] for b in f["cat"]["bins"]]
    assert labels[-2:] == ["__unseen__", "__missing__"]
    assert f["count"]["n_cur"] == 0 and f["count"]["level"] == "significant"
    assert f["count"]["p_value"] is None
    assert rep["severity"] == "significant"


def test_prediction_drift_scores_and_positive_rate() -> None:
    rng = np.random.default_rng(6)
    ref, cur = _frame(rng, 20_000), _frame(rng, 20_000)
    s_ref, s_cur = rng.beta(1, 20, size=20_000), rng.beta(1, 8, size=20_000)
    thr = float(np.quantile(s_ref, 0.98))
    profile = drift.build_reference_profile(ref, None, scores=s_ref, threshold=thr)
    rep = drift.drift_report(profile, cur, current_scores=s_cur)
    pr = rep["prediction"]
    assert pr["positive_rate"]["reference"] == pytest.approx(0.02, abs=0.001)
    assert pr["positive_rate"]["current"] > 0.1
    assert pr["positive_rate"]["level"] == "significant" and pr["score"]["drifted"]
    assert rep["severity"] == "significant"
    same = drift.drift_report(profile, cur, current_scores=rng.beta(1, 20, size=20_000))
    assert not same["prediction"]["drifted"]


def test_report_json_shape_and_determinism() -> None:
    rng = np.random.default_rng(7)
    ref, cur = _frame(rng, 5000), _frame(rng, 4000, shift=0.3)
    profile = drift.build_reference_profile(ref, None, scores=rng.uniform(size=5000), threshold=0.9)
    lineage = {"inputs": {"features.parquet": "abc"}, "model_version": "m1",
               "current_rows": 4000}
    rep = drift.drift_report(profile, cur, rng.uniform(size=4000), lineage=lineage)
    rep2 = drift.drift_report(profile, cur, rep and rng.uniform(size=4000) * 0 + 0.5,
                              lineage=lineage)
    assert rep["lineage"] == lineage
    for key in ("features", "drift_share", "severity", "multivariate", "prediction",
                "recommendation"):
        assert key in rep
    for e in rep["features"]:
        for key in ("name", "type", "method", "statistic", "p_value", "effect_size", "threshold",
                    "drifted", "psi", "psi_expected", "ks_d", "wasserstein_norm", "js",
                    "missing_share_ref", "missing_share_cur", "unseen_categories", "bins"):
            assert key in e, key
        assert sum(b["ref"] for b in e["bins"]) == pytest.approx(1.0)
        assert sum(b["psi"] for b in e["bins"]) == pytest.approx(e["psi"], rel=1e-6)
    text = canonical_json(rep)
    again = drift.drift_report(profile, cur, np.asarray(rep2 and rng.uniform(size=4000)),
                               lineage=lineage)
    assert json.loads(text)["severity"] == rep["severity"]
    assert canonical_json(drift.drift_report(profile, cur, None, lineage=lineage)) == \
        canonical_json(drift.drift_report(profile, cur, None, lineage=lineage))
    assert again["features"] == drift.drift_report(profile, cur, np.asarray(
        again and rng.uniform(size=4000)), lineage=lineage)["features"]


def test_profile_files_are_deterministic_small_and_exact(tmp_path) -> None:
    rng = np.random.default_rng(8)
    ref, cur = _frame(rng, 30_000), _frame(rng, 20_000, shift=0.05)
    ref["ts"] = pd.date_range("2025-01-01", periods=30_000, freq="min")
    scores = rng.uniform(size=30_000)
    p1 = drift.build_reference_profile(ref, None, scores=scores, threshold=0.5,
                                       params={"chunk_by": "period", "chunk_period": "D"},
                                       timestamp_column="ts")
    assert p1["n_chunks"] == 21
    j1, v1 = drift.save_reference_profile(p1, tmp_path / "a" / "reference_profile.json")
    p2 = drift.build_reference_profile(ref, None, scores=scores, threshold=0.5,
                                       params={"chunk_by": "period", "chunk_period": "D"},
                                       timestamp_column="ts")
    j2, v2 = drift.save_reference_profile(p2, tmp_path / "b" / "reference_profile.json")
    assert md5_file(j1) == md5_file(j2) and md5_file(v1) == md5_file(v2)
    assert j1.stat().st_size < 200_000
    meta = json.loads(j1.read_text())
    assert "_values" not in meta and meta["values_file"]["md5"] == md5_file(v1)
    assert "ts" not in meta["features"]
    loaded = drift.load_reference_profile(j1, verify=True)
    mem = drift.drift_report(p1, cur, rng.uniform(size=20_000) * 0 + 0.4)
    disk = drift.drift_report(loaded, cur, np.full(20_000, 0.4))
    assert canonical_json(mem) == canonical_json(disk)
    # the KS in the report equals scipy on the raw data
    from scipy.stats import ks_2samp

    e = {f["name"]: f for f in disk["features"]}["lognormal"]
    assert e["ks_d"] == pytest.approx(ks_2samp(ref["lognormal"], cur["lognormal"]).statistic,
                                      abs=1e-12)


def test_parquet_column_path_and_streaming_agree_with_the_frame_path(tmp_path) -> None:
    rng = np.random.default_rng(9)
    ref, cur = _frame(rng, 40_000), _frame(rng, 35_000, shift=0.04)
    cur.loc[:99, "normal"] = np.nan
    ref.to_parquet(tmp_path / "ref.parquet", index=False)
    cur.to_parquet(tmp_path / "cur.parquet", index=False, row_group_size=5000)
    params = {"stream_batch_rows": 6000}
    prof_frame = drift.build_reference_profile(ref, None, params=params)
    prof_pq = drift.build_reference_profile_from_parquet(tmp_path / "ref.parquet", params=params)
    a = drift.drift_report(prof_frame, cur, params=params)
    b = drift.compute_drift_from_parquet(prof_pq, tmp_path / "cur.parquet", params=params)
    c = drift.compute_drift_from_parquet(prof_pq, tmp_path / "cur.parquet", params=params,
                                         stream=True)
    assert canonical_json(a["features"]) == canonical_json(b["features"])
    assert a["multivariate"] == b["multivariate"] == c["multivariate"]
    assert c["current"]["streamed"]
    for x, y in zip(b["features"], c["features"], strict=False):
        assert x["ks_d"] == y["ks_d"] and x["p_value"] == y["p_value"]
        assert x["psi"] == y["psi"] and x["bins"] == y["bins"] and x["drifted"] == y["drifted"]
        if x["wasserstein_norm"] is not None:
            assert y["wasserstein_norm"] == pytest.approx(x["wasserstein_norm"], rel=0.05, abs=1e-3)


def test_methods_thresholds_and_params() -> None:
    rng = np.random.default_rng(10)
    ref, cur = _frame(rng, 20_000), _frame(rng, 20_000, shift=0.6)
    for method, eff in (("psi", "psi"), ("js", "js_distance"), ("wasserstein", "wasserstein_norm"),
                        ("ks", "ks_d"), ("chi2", "cohens_w")):
        params = {"method_numeric": method}
        profile = drift.build_reference_profile(ref, None, params=params)
        rep = drift.drift_report(profile, cur, params=params)
        e = rep["features"][0]
        assert e["method"] == method and e["effect_name"] == eff and e["drifted"]
    rep = drift.drift_report(drift.build_reference_profile(ref), cur,
                             params={"threshold_source": "chunks"})
    assert rep["features"][0]["threshold_source"] in ("default",) or \
        rep["features"][0]["threshold_source"].startswith("reference chunks")
    # small batches: the chunk-based threshold rises above the default
    small = drift.drift_report(drift.build_reference_profile(ref), cur.iloc[:300])
    assert small["features"][0]["threshold"] >= 0.025
    with pytest.raises(DataError):
        drift.resolve_params({"no_such_key": 1})
    with pytest.raises(DataError):
        drift.resolve_params({"method_categorical": "ks"})


def test_contract_columns_and_bad_input() -> None:
    from mlops_assets.core.contract import load_contract

    contract = load_contract("mlops_assets/contracts/fraud.yaml")
    types = drift.profile.column_types(contract) if hasattr(drift, "profile") else None
    from mlops_assets.core.drift.profile import column_types

    types = column_types(contract)
    assert types["channel"] == "categorical" and types["log_amount"] == "numeric"
    rng = np.random.default_rng(12)
    ref = _frame(rng, 100)
    with pytest.raises(DataError):
        drift.build_reference_profile(ref.iloc[:0])
    with pytest.raises(DataError):
        drift.build_reference_profile(ref.assign(normal=np.nan))
    profile = drift.build_reference_profile(ref)
    with pytest.raises(DataError):
        drift.drift_report(profile, ref.drop(columns=["cat"]))
    with pytest.raises(DataError):
        drift.drift_report(profile, ref.iloc[:0])


def test_html_is_self_contained_deterministic_and_complete() -> None:
    rng = np.random.default_rng(13)
    ref, cur = _frame(rng, 5000), _frame(rng, 5000, shift=0.5)
    cur.loc[:50, "cat"] = "zz"
    profile = drift.build_reference_profile(ref, None, scores=rng.uniform(size=5000), threshold=0.9)
    history = [drift.drift_report(profile, _frame(rng, 5000), rng.uniform(size=5000),
                                  lineage={"current_batch": f"week-{i}"}) for i in range(3)]
    rep = drift.drift_report(profile, cur, rng.uniform(size=5000),
                             lineage={"current_batch": "week-3"},
                             importance={"normal": 0.5, "cat": 0.3, "count": 0.1})
    page = drift.render_html(rep, history=history)
    assert page == drift.render_html(rep, history=history)
    low = page.lower()
    for banned in ("<script", "<link", "src=\"http", "@import", "url("):
        assert banned not in low
    for needed in ("Severity", "Features ranked by drift", "ranked by importance",
                   "Trend across recent batches", "PSI contribution per bin", "<svg", "week-2",
                   "zz"):
        assert needed in page, needed
    md = drift.markdown_table(rep)
    assert md.startswith("**Severity: ") and "| normal |" in md


def test_threads_spill_and_row_groups_do_not_change_a_byte(tmp_path, monkeypatch) -> None:
    """Bounded-memory paths give the same bytes as the in-memory ones: any number of worker
    threads, a profile build that spills its values to disk, values files with several row
    groups per column, and Parquet batches read row group by row group."""
    from mlops_assets.core.drift import profile as drift_profile
    from mlops_assets.core.drift import values as drift_values

    monkeypatch.setattr(drift_values, "VALUES_ROWS", 7_000)  # several row groups per column
    rng = np.random.default_rng(12)
    ref, cur = _frame(rng, 30_000), _frame(rng, 25_000, shift=0.03)
    ref.loc[:49, "lognormal"] = np.nan
    cur.loc[10:30, "normal"] = np.nan
    cur.loc[:5, "cat"] = None
    ref.to_parquet(tmp_path / "ref.parquet", index=False, row_group_size=8_000)
    cur.to_parquet(tmp_path / "cur.parquet", index=False, row_group_size=6_000)
    scores = rng.uniform(size=30_000)
    kw = {"scores": scores, "threshold": 0.7}
    mem = drift.build_reference_profile_from_parquet(tmp_path / "ref.parquet", **kw)
    src = drift_profile.ParquetSource(tmp_path / "ref.parquet")
    types = drift_profile.column_types(None, src.names(), {f.name: f.type for f in src.schema})
    spilled = drift_profile.build_profile_from_source(src, types, None, scores, 0.7, spill=True)
    assert isinstance(spilled["_values"], drift_values.LazyValues)
    spill_dir = spilled["_values"].path.parent
    j1, v1 = drift.save_reference_profile(mem, tmp_path / "a" / "reference_profile.json")
    j2, v2 = drift.save_reference_profile(spilled, tmp_path / "b" / "reference_profile.json")
    assert md5_file(v1) == md5_file(v2) and md5_file(j1) == md5_file(j2)
    del spilled
    import gc

    gc.collect()
    assert not spill_dir.exists()  # the temporary values go with the profile object
    loaded = drift.load_reference_profile(j1, verify=True)
    for name in ("normal", "lognormal", drift_profile.SCORE):
        u, counts = loaded["_values"][name]
        u0, c0 = mem["_values"][name]
        assert np.array_equal(u, u0) and (counts is None) == (c0 is None)
    u, counts = loaded["_values"]["count"]  # Poisson: ties, so counts are stored
    assert counts is not None and int(counts.sum()) == 30_000
    cur_scores = rng.uniform(size=25_000)
    reports = [drift.compute_drift_from_parquet(loaded, tmp_path / "cur.parquet", cur_scores,
                                                workers=w) for w in (1, 2, 3)]
    reports.append(drift.drift_report(mem, cur, cur_scores, workers=4))
    reports.append(drift.drift_report(loaded, cur, cur_scores, workers=1))
    assert len({canonical_json(r) for r in reports}) == 1
    assert cur["normal"].isna().sum() == 21  # the caller's frame is never sorted in place
    assert reports[0]["features"][3]["missing_share_cur"] == pytest.approx(6 / 25_000)


def test_dictionary_columns_count_like_strings(tmp_path) -> None:
    import pyarrow as pa

    from mlops_assets.core.drift.profile import ParquetSource, category_counts

    col = pa.chunked_array([pa.array(["a", "b", None, "a"]).dictionary_encode(),
                            pa.array(["b", "zz", None]).dictionary_encode()])
    assert category_counts(col) == category_counts(col.cast(pa.string())) == (
        {"a": 2, "b": 2, "zz": 1}, 2)
    pd.DataFrame({"c": ["x", None, "y", "x"] * 50}).to_parquet(tmp_path / "c.parquet",
                                                                row_group_size=30)
    src = ParquetSource(tmp_path / "c.parquet")
    assert pa.types.is_dictionary(src.categorical("c").type)
    assert category_counts(src.categorical("c")) == ({"x": 100, "y": 50}, 50)
