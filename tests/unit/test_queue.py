"""The queues on both backends: signed task data on a shared Redis, and the periodic-task heartbeat that keeps
exactly one worker of a deployment running the reaper and retention."""

from __future__ import annotations

from pathlib import Path

import pytest
from huey import Huey

from image2model.api.worker.periodic import PeriodicHeartbeat
from image2model.api.worker.queue import SignedSerializer, build_huey
from image2model.core.settings import Settings


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def settings(request, tmp_path: Path) -> Settings:
    redis_url = request.getfixturevalue("redis_server").url if request.param == "redis" else ""
    return Settings(data_dir=tmp_path / "data", redis_url=redis_url, signing_secret="s3cret")


@pytest.fixture
def queue(settings: Settings) -> Huey:
    huey = build_huey(settings, "cpu")
    huey.flush()
    return huey


def test_the_settings_alone_pick_the_queue_backend(settings: Settings, queue: Huey):
    expected = "RedisStorage" if settings.redis_url else "_WalNormalStorage"
    assert type(queue.storage).__name__ == expected
    assert queue.results is False


def test_task_data_survives_the_signed_round_trip():
    serializer = SignedSerializer(lambda: b"secret")
    data = serializer.serialize({"job": "j1", "index": 3})
    assert serializer.deserialize(data) == {"job": "j1", "index": 3}


def test_a_tampered_or_foreign_message_is_refused_before_unpickling():
    serializer = SignedSerializer(lambda: b"secret")
    data = bytearray(serializer.serialize(("j1", 3)))
    data[-2] ^= 1
    with pytest.raises(ValueError, match="bad signature"):
        serializer.deserialize(bytes(data))
    foreign = SignedSerializer(lambda: b"another deployment").serialize(("j1", 3))
    with pytest.raises(ValueError, match="bad signature"):
        serializer.deserialize(foreign)


def test_redis_queue_messages_are_signed_with_the_deployment_secret(redis_server, tmp_path: Path):
    settings = Settings(data_dir=tmp_path, redis_url=redis_server.url, signing_secret="s3cret")
    huey = build_huey(settings, "io")
    huey.flush()

    @huey.task()
    def add(a: int, b: int) -> int:
        return a + b

    add(1, 2)
    raw = huey.storage.dequeue()
    assert b"add" in raw  # the pickled task is there in clear, with its signature in front
    assert SignedSerializer(lambda: b"s3cret").deserialize(raw).args == (1, 2)
    with pytest.raises(ValueError):
        SignedSerializer(lambda: b"guess").deserialize(raw)


def test_one_periodic_worker_beats_quietly(queue: Huey):
    owner = PeriodicHeartbeat(queue, periodic=True, interval=2.0)
    other = PeriodicHeartbeat(queue, periodic=False, interval=2.0)
    assert owner.beat(now=1000.0) is None
    assert other.beat(now=1007.0) is None  # a fresh heartbeat exists: someone runs them
    assert owner.beat(now=1002.0) is None  # its own heartbeat is not "another worker"


def test_two_periodic_workers_warn(queue: Huey):
    first = PeriodicHeartbeat(queue, periodic=True, interval=2.0)
    second = PeriodicHeartbeat(queue, periodic=True, interval=2.0)
    second.owner = "host-b:42"
    assert first.beat(now=1000.0) is None
    warning = second.beat(now=1001.0)
    assert warning is not None and "two workers run the periodic tasks" in warning
    assert first.owner in warning and "host-b:42" in warning
    assert second.beat(now=1003.5) is None  # warnings are rate-limited


def test_a_stale_heartbeat_of_a_dead_worker_is_not_a_second_runner(queue: Huey):
    dead = PeriodicHeartbeat(queue, periodic=True, interval=2.0)
    dead.owner = "gone:1"
    dead.beat(now=1000.0)
    successor = PeriodicHeartbeat(queue, periodic=True, interval=2.0)
    assert successor.beat(now=1010.0) is None


def test_workers_warn_when_nobody_runs_the_periodic_tasks(queue: Huey):
    lone = PeriodicHeartbeat(queue, periodic=False, interval=2.0)
    start = lone._started
    assert lone.beat(now=start + 1) is None  # give a periodic worker time to start
    warning = lone.beat(now=start + 10)
    assert warning is not None and "no worker runs the periodic tasks" in warning


def test_processes_on_other_hosts_share_one_generated_secret_through_redis(redis_server, tmp_path: Path):
    from image2model.api.security import load_secret

    host_a = Settings(data_dir=tmp_path / "a", redis_url=redis_server.url)
    host_b = Settings(data_dir=tmp_path / "b", redis_url=redis_server.url)
    secret = load_secret(host_a)
    assert len(secret) >= 32
    assert load_secret(host_b) == secret
    assert not (tmp_path / "a" / "signing.key").exists()
    assert (
        load_secret(Settings(data_dir=tmp_path / "a", redis_url=redis_server.url, signing_secret="x")) == b"x"
    )
