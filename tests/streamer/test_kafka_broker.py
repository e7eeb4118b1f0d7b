"""What the streamer relies on from Apache Kafka 4.x through kafka-python 3.x, on the real broker.

Topic creation with N partitions, keyed produce (same key -> same partition), manual commit
after processing, resume from committed offsets, and a two-member consumer group that splits
the partitions. Every wait is bounded and fails with a message saying what never happened.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaTimeoutError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata

pytestmark = pytest.mark.kafka

WAIT_S = 30.0
# Fast group membership so joins/rebalances take well under a second on the test broker.
GROUP_OPTS = {
    "enable_auto_commit": False,
    "auto_offset_reset": "earliest",
    "session_timeout_ms": 6000,
    "heartbeat_interval_ms": 200,
    "request_timeout_ms": 15000,
}


@pytest.fixture
def admin(kafka_bootstrap: str) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="lt4rec-test-admin")
    yield client
    client.close()


@pytest.fixture
def make_topic(admin: KafkaAdminClient, unique_name) -> Iterator[Callable[[int], str]]:
    """Factory: create a fresh topic with N partitions (deleted after the test)."""
    created: list[str] = []

    def make(partitions: int) -> str:
        name = unique_name("topic")
        admin.create_topics(
            {name: {"num_partitions": partitions, "replication_factor": 1}},
            wait_for_metadata=True,
        )
        created.append(name)
        return name

    yield make
    if created:
        admin.delete_topics(created, raise_errors=False)


@pytest.fixture
def producer(kafka_bootstrap: str) -> Iterator[KafkaProducer]:
    prod = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=0)
    yield prod
    prod.close()


def consumer(bootstrap: str, group: str, topic: str | None = None) -> KafkaConsumer:
    cons = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, **GROUP_OPTS)
    if topic is not None:
        cons.subscribe([topic])
    return cons


def poll_values(cons: KafkaConsumer, count: int, what: str) -> list[bytes]:
    """Poll until ``count`` records arrived (in partition/offset order of arrival)."""
    values: list[bytes] = []
    deadline = time.monotonic() + WAIT_S
    while len(values) < count:
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: got {len(values)} of {count} records within {WAIT_S}s")
        for records in cons.poll(timeout_ms=200).values():
            values.extend(r.value for r in records)
    return values


def test_create_topic_with_partitions(admin: KafkaAdminClient, make_topic) -> None:
    topic = make_topic(3)
    (desc,) = admin.describe_topics([topic])
    assert desc["error_code"] == 0
    assert sorted(p["partition_index"] for p in desc["partitions"]) == [0, 1, 2]
    assert all(p["leader_id"] >= 0 for p in desc["partitions"])
    assert topic in admin.list_topics()
    with pytest.raises(TopicAlreadyExistsError):
        admin.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}})


def test_auto_create_is_disabled(kafka_bootstrap: str, admin, unique_name) -> None:
    """A typo in a topic name must fail loudly instead of creating a 1-partition topic."""
    topic = unique_name("missing")
    prod = KafkaProducer(bootstrap_servers=kafka_bootstrap, max_block_ms=1500)
    try:
        with pytest.raises(KafkaTimeoutError, match="metadata"):
            prod.send(topic, b"x").get(timeout=5)
    finally:
        prod.close()
    assert topic not in admin.list_topics()


def test_same_key_same_partition(producer: KafkaProducer, make_topic, kafka_bootstrap) -> None:
    topic = make_topic(4)
    keys = [f"imp-{i}".encode() for i in range(12)]
    placed: dict[bytes, set[int]] = {k: set() for k in keys}
    for round_ in range(3):
        futures = [(k, producer.send(topic, key=k, value=b"%d" % round_)) for k in keys]
        for k, fut in futures:
            placed[k].add(fut.get(timeout=WAIT_S).partition)
    assert all(len(parts) == 1 for parts in placed.values()), placed
    assert len({next(iter(p)) for p in placed.values()}) > 1, "12 keys all in one partition"

    cons = KafkaConsumer(bootstrap_servers=kafka_bootstrap, **GROUP_OPTS)
    cons.assign([TopicPartition(topic, p) for p in range(4)])
    cons.seek_to_beginning()
    seen: dict[bytes, list[tuple[int, bytes]]] = {k: [] for k in keys}
    deadline = time.monotonic() + WAIT_S
    while sum(map(len, seen.values())) < 36 and time.monotonic() < deadline:
        for tp, records in cons.poll(timeout_ms=200).items():
            for r in records:
                seen[r.key].append((tp.partition, r.value))
    cons.close()
    for k in keys:  # per key: one partition, produce order preserved
        assert seen[k] == [(next(iter(placed[k])), b"%d" % i) for i in range(3)], k


def test_manual_commit_after_processing_and_resume(
    producer: KafkaProducer, make_topic, kafka_bootstrap: str, unique_name, admin
) -> None:
    topic = make_topic(1)
    group = unique_name("group")
    tp = TopicPartition(topic, 0)
    for i in range(10):
        producer.send(topic, key=b"k", value=b"%d" % i)
    producer.flush(timeout=WAIT_S)

    # A consumer that reads but never commits leaves the group at the beginning.
    first = consumer(kafka_bootstrap, group, topic)
    assert len(poll_values(first, 10, "uncommitted read")) == 10
    first.close(autocommit=False)
    assert admin.list_group_offsets({group: None})[group].get(tp) is None

    # Process 4 records, then commit the offset of the next record to read.
    second = consumer(kafka_bootstrap, group, topic)
    values = poll_values(second, 4, "first pass")
    assert values[:4] == [b"%d" % i for i in range(4)]
    processed = values[:4]
    second.commit({tp: OffsetAndMetadata(len(processed), "", -1)})
    assert second.committed(tp) == 4
    second.close(autocommit=False)
    assert admin.list_group_offsets({group: None})[group][tp].offset == 4

    # A new member of the same group resumes exactly after the processed records.
    third = consumer(kafka_bootstrap, group, topic)
    rest = poll_values(third, 6, "resume")
    assert rest == [b"%d" % i for i in range(4, 10)]
    third.commit()  # commit everything consumed
    assert third.committed(tp) == 10
    third.close(autocommit=False)


def test_two_member_group_splits_partitions(make_topic, kafka_bootstrap, unique_name) -> None:
    topic = make_topic(4)
    group = unique_name("group")
    stop = threading.Event()
    assigned: dict[str, set[int]] = {}
    errors: list[BaseException] = []

    def member(name: str, start_after: threading.Event | None) -> None:
        try:
            if start_after is not None:
                start_after.wait(WAIT_S)
            cons = consumer(kafka_bootstrap, group, topic)
            try:
                while not stop.is_set():
                    cons.poll(timeout_ms=100)
                    assigned[name] = {tp.partition for tp in cons.assignment()}
            finally:
                cons.close(autocommit=False)
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)

    first_joined = threading.Event()
    threads = [
        threading.Thread(target=member, args=("a", None), daemon=True),
        threading.Thread(target=member, args=("b", first_joined), daemon=True),
    ]
    threads[0].start()
    deadline = time.monotonic() + WAIT_S
    while assigned.get("a") != {0, 1, 2, 3} and time.monotonic() < deadline and not errors:
        time.sleep(0.05)
    first_joined.set()
    threads[1].start()
    try:
        assert not errors, errors
        assert assigned.get("a") == {0, 1, 2, 3}, (
            f"lone member never got all partitions: {assigned}"
        )

        def split() -> bool:
            a, b = assigned.get("a", set()), assigned.get("b", set())
            return bool(a) and bool(b) and not (a & b) and a | b == {0, 1, 2, 3}

        while not split() and time.monotonic() < deadline + WAIT_S and not errors:
            time.sleep(0.05)
        assert not errors, errors
        assert split(), f"group never split 4 partitions between 2 members: {assigned}"
        assert len(assigned["a"]) == len(assigned["b"]) == 2
    finally:
        stop.set()
        for t in threads:
            t.join(WAIT_S)
