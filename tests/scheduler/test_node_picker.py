"""NodePicker places tasks exactly as the scan of every node it replaced (issue 16), in O(log nodes)."""

from __future__ import annotations

import random

from scheduler.core import NodePicker


def scan(free: dict[str, int], encoders: dict[str, frozenset[str]], required: list[str]) -> str | None:
    """The node picking before issue 16: the most free slots among nodes with the encoders, first among equals."""
    best, best_free = None, 0
    for node_id, slots in free.items():
        if slots > best_free and node_id in encoders and set(required) <= encoders[node_id]:
            best, best_free = node_id, slots
    if best is not None:
        free[best] -= 1
    return best


def test_the_picker_chooses_what_the_full_scan_chose():
    rng = random.Random(16)
    kinds = [frozenset({"libx264"}), frozenset({"libx264", "h264_nvenc"}), frozenset({"h264_nvenc"}), frozenset()]
    for _ in range(200):
        node_count = rng.randint(1, 40)
        free = {f"n{i}": rng.randint(0, 4) for i in range(node_count)}
        encoders = {n: rng.choice(kinds) for n in free}
        del encoders[rng.choice(list(free))]  # a node that left between the snapshot and the pick
        picker = NodePicker(dict(free), encoders)
        expected_free = dict(free)
        for _ in range(rng.randint(1, 3 * node_count)):
            required = rng.choice([[], ["h264_nvenc"], ["libx264"], ["libx264", "h264_nvenc"], None])
            assert picker.take(required) == scan(expected_free, encoders, required or [])
        assert picker.free == expected_free


def test_a_task_no_node_can_run_is_left_and_slots_run_out():
    picker = NodePicker({"a": 2, "b": 1}, {"a": frozenset({"libx264"}), "b": frozenset({"libx264"})})
    assert picker.take(["h264_nvenc"]) is None
    assert [picker.take([]) for _ in range(4)] == ["a", "a", "b", None]  # most free first; a tie goes to the first
