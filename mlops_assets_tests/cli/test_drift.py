"""`mlops-assets drift`: exit 0 / 1 / 2, CSV and Parquet, readable table, JSON and HTML."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_assets.cli.drift import main

REPO = Path(__file__).resolve().parent.parent


def _frames(shift: float = 0.0, n: int = 4000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def one(s: float, new_cat: bool) -> pd.DataFrame:
        cats = np.array(["pos", "online", "atm"] + (["crypto"] if new_cat else []))
        p = [0.5, 0.3, 0.2] + ([] if not new_cat else [0.0])
        if new_cat:
            p = [0.35, 0.25, 0.15, 0.25]
        return pd.DataFrame({"amount": rng.lognormal(3 + s, 1, size=n),
                             "hour": rng.integers(0, 24, size=n),
                             "channel": cats[rng.choice(len(cats), size=n, p=p)],
                             "is_weekend": rng.random(size=n) < 0.28,
                             "store": rng.integers(0, 5, size=n)})

    return one(0.0, False), one(shift, shift > 0)


def test_no_drift_exits_0_and_prints_a_table(tmp_path, capsys) -> None:
    ref, cur = _frames()
    ref.to_csv(tmp_path / "ref.csv", index=False)
    cur.to_parquet(tmp_path / "cur.parquet", index=False)
    rc = main(["drift", "--reference", str(tmp_path / "ref.csv"), "--current",
               str(tmp_path / "cur.parquet"), "--categorical", "store",
               "--json", str(tmp_path / "r.json"), "--html", str(tmp_path / "r.html")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "feature" in out and "severity: NONE" in out
    rep = json.loads((tmp_path / "r.json").read_text())
    types = {e["name"]: e["type"] for e in rep["features"]}
    assert types == {"amount": "numeric", "hour": "numeric", "channel": "categorical",
                     "is_weekend": "categorical", "store": "categorical"}
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")


def test_significant_drift_exits_1(tmp_path, capsys) -> None:
    ref, cur = _frames(shift=0.5)
    ref.to_parquet(tmp_path / "ref.parquet", index=False)
    cur.to_parquet(tmp_path / "cur.parquet", index=False)
    rc = main(["drift", "--reference", str(tmp_path / "ref.parquet"), "--current",
               str(tmp_path / "cur.parquet"), "--method", "psi"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "SIGNIFICANT" in out and "crypto" in out


@pytest.mark.parametrize("case", ["missing_file", "no_common_columns", "empty_frame",
                                  "all_null_column", "unknown_categorical"])
def test_bad_input_exits_2_with_a_clear_message(tmp_path, capsys, case: str) -> None:
    ref, cur = _frames()
    ref_p, cur_p = tmp_path / "ref.csv", tmp_path / "cur.csv"
    ref.to_csv(ref_p, index=False)
    extra: list[str] = []
    if case == "missing_file":
        cur_p = tmp_path / "nope.parquet"
        expect = "does not exist"
    elif case == "no_common_columns":
        cur.rename(columns=lambda c: c + "_x").to_csv(cur_p, index=False)
        expect = "no columns in common"
    elif case == "empty_frame":
        cur.iloc[:0].to_parquet(cur_p := tmp_path / "cur.parquet", index=False)
        expect = "no rows"
    elif case == "all_null_column":
        cur.assign(amount=np.nan).to_csv(cur_p, index=False)
        expect = "entirely null"
    else:
        cur.to_csv(cur_p, index=False)
        extra = ["--categorical", "nosuch"]
        expect = "nosuch"
    rc = main(["drift", "--reference", str(ref_p), "--current", str(cur_p), *extra])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: ") and expect in err
    assert "Traceback" not in err


def test_runs_as_a_module(tmp_path) -> None:
    ref, cur = _frames()
    ref.to_parquet(tmp_path / "ref.parquet", index=False)
    cur.to_parquet(tmp_path / "cur.parquet", index=False)
    proc = subprocess.run([sys.executable, "-m", "mlops_assets.cli.drift", "drift", "--reference",
                           str(tmp_path / "ref.parquet"), "--current", str(tmp_path / "cur.parquet")],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "drift share" in proc.stdout
