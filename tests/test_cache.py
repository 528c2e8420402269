import json
import os
import threading

import pytest

from cod.counterfactuals.cache import DiskCache, canonical, key_hash
from cod.errors import ConfigError


def test_round_trip_and_miss(tmp_path):
    cache = DiskCache(tmp_path / "c")
    key = {"text": "the film is good", "target": "negative", "round": 0}
    assert cache.get(key) is None and key not in cache
    path = cache.put(key, {"content": '["the film is bad"]', "tokens": 12})
    assert path.exists() and path.parent.parent == cache.dir
    assert cache.get(key) == {"content": '["the film is bad"]', "tokens": 12}
    assert key in cache and len(cache) == 1
    assert cache.get({**key, "round": 1}) is None


def test_key_order_does_not_matter_and_unicode_survives(tmp_path):
    cache = DiskCache(tmp_path)
    cache.put({"a": 1, "b": "é ☃"}, {"v": "ünïcode"})
    assert cache.get({"b": "é ☃", "a": 1}) == {"v": "ünïcode"}
    assert canonical({"b": 1, "a": 2}) == canonical({"a": 2, "b": 1})
    assert key_hash({"a": 1}) != key_hash({"a": "1"})


def test_a_new_instance_reads_what_another_wrote(tmp_path):
    DiskCache(tmp_path).put({"k": 1}, {"v": 1})
    assert DiskCache(tmp_path).get({"k": 1}) == {"v": 1}


def test_damaged_or_foreign_entries_are_misses_and_get_overwritten(tmp_path):
    cache = DiskCache(tmp_path)
    key = {"k": "torn"}
    path = cache.path(key)
    path.parent.mkdir(parents=True)
    path.write_text('{"key": {"k": "torn"}, "value": {"v"')  # a torn write from an older tool
    assert cache.get(key) is None
    cache.put(key, {"v": 2})
    assert cache.get(key) == {"v": 2}
    # An entry whose stored key differs (copied by hand) is not trusted.
    other = cache.path({"k": "other"})
    other.parent.mkdir(parents=True, exist_ok=True)
    other.write_text(json.dumps({"key": {"k": "something else"}, "value": {"v": 3}}))
    assert cache.get({"k": "other"}) is None


def test_writes_are_atomic_no_temporary_files_left(tmp_path):
    cache = DiskCache(tmp_path)
    threads = [threading.Thread(target=cache.put, args=({"k": i % 3}, {"v": i})) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 3
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".tmp-")]
    for i in range(3):
        assert cache.get({"k": i})["v"] % 3 == i


def test_clear_and_bad_inputs(tmp_path):
    cache = DiskCache(tmp_path)
    cache.put({"k": 1}, {"v": 1})
    cache.put({"k": 2}, {"v": 2})
    assert cache.clear() == 2 and len(cache) == 0
    with pytest.raises(ConfigError, match="plain JSON"):
        cache.put({"k": object()}, {"v": 1})
    with pytest.raises(ConfigError, match="must be a dict"):
        cache.put({"k": 1}, ["not", "a", "dict"])


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_folder_is_a_clear_error(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(ConfigError, match="Cannot create the cache folder"):
        DiskCache(locked / "sub")
