"""Landing discovery, immutable content-hashed snapshots and the deterministic manifest."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from mlops_assets.core.ingest import (
    SnapshotEntry,
    batch_key,
    list_landing_batches,
    load_manifest,
    manifest_entries,
    read_snapshots,
    snapshot_batches,
)
from mlops_assets.core.io import DataError, md5_file
from mlops_assets_tests.core import fraud_frame, write_csv, write_parquet


def _landing(tmp: Path, weeks: int = 3) -> Path:
    landing = tmp / "landing"
    for w in range(weeks):
        write_parquet(landing / f"week_{w}.parquet", fraud_frame(20, week=w, start_id=100 * w))
    return landing


def _snap_files(store: Path) -> list[str]:
    return sorted(p.name for p in store.iterdir() if p.name != "manifest.json")


def test_list_landing_batches_ignores_hidden_and_temporary_files(tmp_path):
    d = tmp_path / "landing"
    d.mkdir()
    for name in ["b.csv", "a.parquet", "C.PARQUET", ".hidden.csv", "_SUCCESS", "_meta.parquet",
                 ".week_3.parquet.tmp", "week_4.parquet.partial", "w.csv.tmp", "notes.txt",
                 "x.parquet~", "~lock.csv"]:
        (d / name).write_bytes(b"x")
    (d / "sub.csv").mkdir()
    assert [p.name for p in list_landing_batches(d)] == ["C.PARQUET", "a.parquet", "b.csv"]
    assert list_landing_batches(tmp_path / "missing") == []


def test_batch_key_is_the_sanitised_stem():
    assert batch_key(Path("/x/week_2025-09-01.parquet")) == "week_2025-09-01"
    assert batch_key("week 1 (fixed).csv") == "week_1__fixed_"
    assert batch_key("día.v2.csv") == "d_a.v2"


def test_snapshot_copies_bytes_and_writes_a_manifest(tmp_path):
    landing = _landing(tmp_path)
    store = tmp_path / "snapshots"
    entries = snapshot_batches(landing, store)
    assert [e.batch for e in entries] == ["week_0", "week_1", "week_2"]
    assert all(e.created for e in entries)
    for e in entries:
        src = landing / e.source_file
        assert e.snapshot_file == f"{e.batch}-{md5_file(src)[:12]}.parquet"
        assert (store / e.snapshot_file).read_bytes() == src.read_bytes()
        assert e.rows == 20 and e.columns[0] == "transaction_id" and e.size == src.stat().st_size
    manifest = json.loads((store / "manifest.json").read_text())
    assert manifest["format"] == 1
    assert [m["batch"] for m in manifest["entries"]] == ["week_0", "week_1", "week_2"]
    assert set(manifest["entries"][0]) == {"batch", "source_file", "snapshot_file", "md5", "size",
                                           "rows", "columns", "history"}
    assert load_manifest(store) == manifest
    assert manifest_entries(store) == entries
    # nothing else in the store (no lock file, no temp files)
    assert _snap_files(store) == sorted(e.snapshot_file for e in entries)


def test_same_file_twice_gives_one_snapshot_never_rewritten(tmp_path):
    landing = _landing(tmp_path, weeks=2)
    store = tmp_path / "snapshots"
    snapshot_batches(landing, store)
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in store.iterdir()
              if p.name != "manifest.json"}
    manifest_before = (store / "manifest.json").read_bytes()
    manifest_stat = (store / "manifest.json").stat().st_ino
    again = snapshot_batches(landing, store)
    assert not any(e.created for e in again)
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in store.iterdir()
             if p.name != "manifest.json"}
    assert after == before
    assert (store / "manifest.json").read_bytes() == manifest_before
    assert (store / "manifest.json").stat().st_ino == manifest_stat  # not even rewritten


def test_changed_content_makes_a_new_snapshot_and_keeps_the_old(tmp_path):
    landing = _landing(tmp_path, weeks=2)
    store = tmp_path / "snapshots"
    first = {e.batch: e for e in snapshot_batches(landing, store)}
    old_file = store / first["week_1"].snapshot_file
    old_stat = (old_file.stat().st_ino, old_file.stat().st_mtime_ns)

    write_parquet(landing / "week_1.parquet", fraud_frame(25, week=1, start_id=100, seed=9))
    second = {e.batch: e for e in snapshot_batches(landing, store)}
    new = second["week_1"]
    assert new.created and new.md5 != first["week_1"].md5 and new.rows == 25
    assert new.history == (first["week_1"].md5, new.md5)
    assert old_file.exists() and (old_file.stat().st_ino, old_file.stat().st_mtime_ns) == old_stat
    assert len(_snap_files(store)) == 3
    current = {e.batch: e for e in manifest_entries(store)}
    assert current["week_1"].snapshot_file == new.snapshot_file
    assert current["week_0"] == first["week_0"]
    # the manifest's current snapshot is what read_snapshots reads
    df = read_snapshots(store)
    assert (df["_batch"] == "week_1").sum() == 25


def test_corrupt_existing_snapshot_is_an_error_and_is_not_rewritten(tmp_path):
    landing = _landing(tmp_path, weeks=1)
    store = tmp_path / "snapshots"
    (entry,) = snapshot_batches(landing, store)
    target = store / entry.snapshot_file
    target.write_bytes(b"tampered")
    with pytest.raises(DataError) as e:
        snapshot_batches(landing, store)
    assert entry.snapshot_file in str(e.value) and "corrupt" in str(e.value)
    assert target.read_bytes() == b"tampered"


def test_keys_select_batches_and_keep_the_rest_of_the_manifest(tmp_path):
    landing = _landing(tmp_path, weeks=3)
    store = tmp_path / "snapshots"
    got = snapshot_batches(landing, store, keys=["week_1"])
    assert [e.batch for e in got] == ["week_1"]
    assert [e.batch for e in manifest_entries(store)] == ["week_1"]
    snapshot_batches(landing, store, keys=["week_0"])
    assert [e.batch for e in manifest_entries(store)] == ["week_0", "week_1"]
    with pytest.raises(DataError, match="no landing file for batch key"):
        snapshot_batches(landing, store, keys=["week_9"])


def test_a_batch_whose_landing_file_went_away_stays_in_the_manifest(tmp_path):
    landing = _landing(tmp_path, weeks=2)
    store = tmp_path / "snapshots"
    snapshot_batches(landing, store)
    (landing / "week_0.parquet").unlink()
    snapshot_batches(landing, store)
    assert [e.batch for e in manifest_entries(store)] == ["week_0", "week_1"]


def test_temporary_files_in_landing_are_not_snapshotted(tmp_path):
    landing = _landing(tmp_path, weeks=1)
    (landing / ".week_1.parquet.tmp").write_bytes(b"half written")
    (landing / "week_2.parquet.partial").write_bytes(b"half written")
    (landing / "_week_3.csv").write_text("a,b\n1,2\n")
    entries = snapshot_batches(landing, tmp_path / "snapshots")
    assert [e.batch for e in entries] == ["week_0"]


def test_manifest_is_byte_identical_across_directories(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        landing = _landing(root, weeks=3)
        write_csv(landing / "extra.csv", fraud_frame(7, week=5, start_id=900))
        snapshot_batches(landing, root / "snapshots")
    ma = (a / "snapshots" / "manifest.json").read_bytes()
    assert ma == (b / "snapshots" / "manifest.json").read_bytes()
    assert str(tmp_path).encode() not in ma
    assert _snap_files(a / "snapshots") == _snap_files(b / "snapshots")


def test_csv_batches_are_copied_as_csv_with_row_counts(tmp_path):
    landing = tmp_path / "landing"
    write_csv(landing / "week_x.csv", fraud_frame(13))
    (entry,) = snapshot_batches(landing, tmp_path / "s")
    assert entry.snapshot_file.endswith(".csv") and entry.rows == 13
    assert entry.source_file == "week_x.csv"


@pytest.mark.parametrize("name,content,needle", [
    ("empty.parquet", b"", "empty (0 bytes)"),
    ("empty.csv", b"", "empty (0 bytes)"),
    ("header_only.csv", b"transaction_id,ts,amount\n", "no rows"),
    ("corrupt.parquet", os.urandom(2048), "cannot read Parquet"),
    ("latin1.csv", "transaction_id,country\nt1,DE\nt2,Espa\u00f1a\n".encode("latin-1"),
     "not valid UTF-8"),
])
def test_unreadable_landing_files_are_rejected_and_nothing_is_written(tmp_path, name, content,
                                                                     needle):
    landing = _landing(tmp_path, weeks=1)
    (landing / name).write_bytes(content)
    store = tmp_path / "snapshots"
    with pytest.raises(DataError) as e:
        snapshot_batches(landing, store)
    msg = str(e.value)
    assert name in msg and needle in msg
    assert not (store / "manifest.json").exists()
    assert _snap_files(store) == []


def test_non_utf8_csv_error_names_the_row(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "latin1.csv").write_bytes(
        "transaction_id,country\nt1,DE\nt2,Espa\u00f1a\n".encode("latin-1"))
    with pytest.raises(DataError) as e:
        snapshot_batches(landing, tmp_path / "s")
    assert "line 3" in str(e.value) and "rows: 1" in str(e.value)


def test_two_files_with_the_same_key_are_an_error(tmp_path):
    landing = _landing(tmp_path, weeks=1)
    write_csv(landing / "week_0.csv", fraud_frame(3))
    with pytest.raises(DataError, match="week_0.csv and week_0.parquet|week_0.parquet and "
                                        "week_0.csv"):
        snapshot_batches(landing, tmp_path / "s")


def test_read_snapshots_concatenates_in_key_order_with_batch(tmp_path):
    landing = _landing(tmp_path, weeks=3)
    store = tmp_path / "snapshots"
    snapshot_batches(landing, store)
    df = read_snapshots(store)
    assert len(df) == 60 and df.columns[-1] == "_batch"
    assert df["_batch"].drop_duplicates().tolist() == ["week_0", "week_1", "week_2"]
    assert df["transaction_id"].iloc[20] == "t0000100"
    only = read_snapshots(store, [e for e in manifest_entries(store) if e.batch == "week_2"])
    assert only["_batch"].unique().tolist() == ["week_2"]


def test_read_snapshots_detects_a_modified_or_missing_snapshot(tmp_path):
    landing = _landing(tmp_path, weeks=2)
    store = tmp_path / "snapshots"
    entries = snapshot_batches(landing, store)
    target = store / entries[1].snapshot_file
    shutil.copyfile(store / entries[0].snapshot_file, target)
    with pytest.raises(DataError) as e:
        read_snapshots(store)
    assert entries[1].snapshot_file in str(e.value) and "md5" in str(e.value)
    target.unlink()
    with pytest.raises(DataError, match="missing"):
        read_snapshots(store)


def test_empty_store_and_bad_manifest(tmp_path):
    assert load_manifest(tmp_path) == {"entries": [], "format": 1}
    with pytest.raises(DataError, match="no batches"):
        read_snapshots(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(DataError) as e:
        load_manifest(tmp_path)
    assert "manifest.json" in str(e.value)


def test_snapshot_entry_round_trip():
    e = SnapshotEntry(batch="b", source_file="b.csv", snapshot_file="b-0123456789ab.csv",
                      md5="0123456789abcdef0123456789abcdef", size=10, rows=2,
                      columns=("x",), history=("0123456789abcdef0123456789abcdef",))
    assert SnapshotEntry.from_dict(json.loads(json.dumps(e.to_dict()))) == e
    assert "created" not in e.to_dict()


def test_read_snapshots_aligns_drifted_columns(tmp_path):
    landing = tmp_path / "landing"
    write_parquet(landing / "a.parquet", fraud_frame(3))
    write_parquet(landing / "b.parquet",
                  fraud_frame(3, week=1, start_id=10).assign(new_col=1.0))
    store = tmp_path / "s"
    snapshot_batches(landing, store)
    df = read_snapshots(store)
    assert df["new_col"].isna().tolist() == [True] * 3 + [False] * 3
    assert pd.api.types.is_datetime64_any_dtype(df["ts"])


def test_concurrent_partition_runs_do_not_lose_manifest_entries(tmp_path):
    """Dagster may snapshot several batch partitions at once: the store lock serialises the
    read-modify-write of the manifest."""
    from concurrent.futures import ThreadPoolExecutor

    landing = _landing(tmp_path, weeks=6)
    store = tmp_path / "snapshots"
    store.mkdir()
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lambda k: snapshot_batches(landing, store, keys=[k]),
                      [f"week_{w}" for w in range(6)]))
    assert [e.batch for e in manifest_entries(store)] == [f"week_{w}" for w in range(6)]
