"""The Redis Cluster of a test's own (`OwnRedisCluster`): 3 masters that share the key
slots, each with the function libraries loaded on it, reached through redis-py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from redis.cluster import RedisCluster

from pg_support import OwnRedisCluster, start_redis_cluster

LIBRARY = ("#!lua name=tbprobe\n"
           "redis.register_function('probe', function(keys, args) "
           "return redis.call('INCR', keys[1]) end)")


@pytest.fixture(scope="module")
def cluster() -> Iterator[OwnRedisCluster]:
    own = start_redis_cluster()
    yield own
    own.remove()


@pytest.mark.slow
def test_keys_and_functions_spread_over_all_three_masters(cluster: OwnRedisCluster) -> None:
    with cluster.client() as rc:
        masters = {node.port for node in rc.get_primaries()}
        assert masters == set(cluster.ports)
        keys = [f"tbprobe:{i}" for i in range(100)]
        assert {rc.get_node_from_key(key).port for key in keys} == masters
        for key in keys:
            rc.set(key, key)
        assert [rc.get(key) for key in keys] == [key.encode() for key in keys]
        assert rc.cluster_keyslot("tbprobe:1") == rc.keyslot("tbprobe:1")

        # FUNCTION LOAD goes to every primary by default (redis-py: PRIMARIES).
        loaded = rc.function_load(LIBRARY, replace=True)
        assert loaded == {f"127.0.0.1:{port}": b"tbprobe" for port in cluster.ports}
        tags = ["{a}", "{b}", "{c}"]  # on the 3rd, 1st and 2nd master
        assert {rc.get_node_from_key(f"{tag}:k").port for tag in tags} == masters
        for tag in tags:
            assert [rc.fcall("probe", 1, f"{tag}:k") for _ in range(2)] == [1, 2]

        pipe = rc.pipeline()  # FCALL in a cluster pipeline: grouped by node
        for tag in tags:
            pipe.fcall("probe", 1, f"{tag}:k")
        assert pipe.execute() == [3, 3, 3]

        assert rc.dbsize(target_nodes=RedisCluster.PRIMARIES) == 103  # summed; bare: 1 node
        cluster.flushall()  # the data goes, the functions stay
        assert rc.dbsize(target_nodes=RedisCluster.PRIMARIES) == 0
        assert rc.fcall("probe", 1, "{a}:k") == 1
        assert rc.function_delete("tbprobe")
        with pytest.raises(redis.ResponseError, match="Function not found"):
            rc.fcall("probe", 1, "{a}:k")
