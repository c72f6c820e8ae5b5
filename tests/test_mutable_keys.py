"""The keys that may change on an existing run directory come from markers on the fields;
this pins the list (the 33 keys hand-kept before, gemini's max_tokens_warn_share, which
only sets when a warning shows, and provider.empty_response_limit), so a marker added or lost
is a decision."""

from __future__ import annotations

from mafine.config import MUTABLE_KEYS, config_differences

PINNED = {
    "iterations",
    "run_dir",
    "finetune.poll_seconds",
    "grading.workers",
    "grading.cache_size",
    "provider.max_concurrency",
    "provider.timeout_s",
    "provider.empty_response_limit",  # issue 10: may be raised to let a stopped stage go on
    *(
        f"provider.gemini.{key}"
        for key in (
            "api_key_env", "tier", "requests_per_minute", "tokens_per_minute", "max_attempts",
            "retry_initial_s", "retry_max_s", "rate_limit_wait_s", "capacity_wait_s", "batch",
            "batch_bucket",
            "batch_poll_s", "batch_window_s", "batch_max_requests", "max_tokens_warn_share",
        )
    ),
    *(
        f"provider.fake.{key}"
        for key in (
            "tuning_polls", "tuning_queued_polls", "batch_polls", "latency_s", "fault_rate",
            "fault_kinds", "fault_seed", "retry_delay_s", "hang_s", "daily_quota",
            "requests_per_minute",
        )
    ),
    *(
        f"provider.local.{key}"
        for key in ("batch_window_ms", "score_batch_size", "log_every", "max_adapters")
    ),
}  # fmt: skip


def test_mutable_keys_are_derived_from_the_markers() -> None:
    assert len(MUTABLE_KEYS) == len(set(MUTABLE_KEYS)) == 38
    assert set(MUTABLE_KEYS) == PINNED


def test_only_unmarked_keys_tell_configs_apart() -> None:
    stored = {"seed": 0, "iterations": 1, "provider": {"timeout_s": 1, "model": "a"}}
    current = {"seed": 1, "iterations": 3, "provider": {"timeout_s": 9, "model": "b"}}
    assert config_differences(stored, current) == ["provider.model", "seed"]
