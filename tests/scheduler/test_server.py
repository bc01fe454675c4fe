"""scheduler/server.py: the scheduler's configuration comes from the settings, like everything else."""

from reelfarm.settings import Settings
from scheduler.server import config_from_settings


def test_the_llm_is_configured_by_the_settings(monkeypatch):
    assert config_from_settings(Settings(_env_file=None)).llm.base_url is None
    monkeypatch.setenv("REELFARM_LLM_BASE_URL", "http://127.0.0.1:1/v1/")
    monkeypatch.setenv("REELFARM_LLM_MODEL", "m1")
    monkeypatch.setenv("REELFARM_LLM_API_KEY", "k")
    monkeypatch.setenv("REELFARM_LLM_TIMEOUT_SECONDS", "7")
    config = config_from_settings(Settings(_env_file=None))
    assert (config.llm.base_url, config.llm.model, config.llm.api_key, config.llm.timeout_seconds) == (
        "http://127.0.0.1:1/v1/", "m1", "k", 7.0)
    monkeypatch.setenv("REELFARM_MAX_ATTEMPTS", "5")
    assert config_from_settings(Settings(_env_file=None)).max_attempts == 5
