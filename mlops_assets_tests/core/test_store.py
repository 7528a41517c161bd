"""core.store: DVC's directory hash, the hash cache, and where DVC's cache objects live."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from mlops_assets.core.store import HashCache, dir_md5, dvc_cache_dir, dvc_cache_object


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# ------------------------------------------------------------------ DVC directory hash


def test_dir_md5_equals_dvc_data_tree_digest(tmp_path: Path) -> None:
    """Our directory md5 is DVC's (dvc_data computes it independently here)."""
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.meta import Meta
    from dvc_data.hashfile.tree import Tree

    files = {"manifest.json": b"{}\n", "week_1-abc.parquet": b"x" * 100, "sub/b.csv": b"a,b\n",
             "a.txt": b"a"}
    tree = Tree()
    for rel, data in files.items():
        tree.add(tuple(rel.split("/")), Meta(), HashInfo("md5", _md5(data)))
    tree.digest()
    assert dir_md5((rel, _md5(d)) for rel, d in files.items()) == tree.hash_info.value


# ------------------------------------------------------------------ hash cache


def test_hash_cache_hits_when_warm_and_misses_after_an_edit(tmp_path: Path) -> None:
    f = tmp_path / "data.bin"
    f.write_bytes(b"a" * 1000)
    db = tmp_path / "hashes.sqlite"
    with HashCache(db) as cache:
        assert cache.md5(f) == _md5(b"a" * 1000)
        assert cache.stats()["hashed"] == 1
    with HashCache(db) as cache:  # a new process: warm
        assert cache.md5(f) == _md5(b"a" * 1000)
        assert cache.stats() | {"cache_file": None} == {
            "cache_file": None, "hits": 1, "hashed": 0, "bytes_hashed": 0}
    # an edit of the same size that restores the mtime is still seen (ctime is in the key)
    st = f.stat()
    time.sleep(0.05)
    f.write_bytes(b"b" + b"a" * 999)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    with HashCache(db) as cache:
        assert cache.md5(f) == _md5(b"b" + b"a" * 999)
        assert cache.stats()["hashed"] == 1


def test_hash_cache_many_files_in_parallel_equal_hashlib(tmp_path: Path) -> None:
    paths = []
    for i in range(12):
        p = tmp_path / f"f{i}"
        p.write_bytes(os.urandom(50_000 + i))
        paths.append(p)
    with HashCache(None, workers=4) as cache:
        got = cache.md5_many(paths)
    assert got == {str(p): _md5(p.read_bytes()) for p in paths}


# ------------------------------------------------------------------ DVC cache location


def test_dvc_cache_object_honours_a_configured_cache_dir(tmp_path: Path) -> None:
    """`cache.dir` (config.local over config, relative to .dvc/) moves every object."""
    dvc = tmp_path / ".dvc"
    dvc.mkdir()
    md5 = "ab" + "c" * 30
    assert dvc_cache_object(tmp_path, md5) == dvc / "cache" / "files" / "md5" / "ab" / ("c" * 30)
    (dvc / "config").write_text("[core]\n    remote = local\n[cache]\n    dir = ../shared\n")
    assert dvc_cache_dir(tmp_path) == (tmp_path / "shared").resolve()
    assert dvc_cache_object(tmp_path, md5 + ".dir") == (
        (tmp_path / "shared").resolve() / "files" / "md5" / "ab" / ("c" * 30 + ".dir"))
    elsewhere = tmp_path / "elsewhere"
    (dvc / "config.local").write_text(f"[cache]\n    dir = {elsewhere}\n")
    assert dvc_cache_object(tmp_path, md5).parent.parent == elsewhere / "files" / "md5"
