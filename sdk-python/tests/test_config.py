"""Bad configuration raises a typed WaitstateError naming the field, at construction; nothing else raises."""
from __future__ import annotations

import pytest

from waitstate import WaitstateClient, WaitstateConfig, WaitstateError

GOOD = {"publish_key": "pk_x", "secret_key": "sk_x", "base_url": "http://127.0.0.1:9"}


@pytest.mark.parametrize(
    "patch, field",
    [
        ({"publish_key": ""}, "publish_key"),
        ({"publish_key": "   "}, "publish_key"),
        ({"secret_key": ""}, "secret_key"),
        ({"secret_key": 42}, "secret_key"),
        ({"publish_key": "x" * 201}, "publish_key"),
        ({"base_url": "ftp://example.com"}, "base_url"),
        ({"base_url": "not a url"}, "base_url"),
        ({"base_url": "http://127.0.0.1:notaport"}, "base_url"),
        ({"site_id": "has space"}, "site_id"),
        ({"site_id": ""}, "site_id"),
        ({"instance_id": "-leading-dash"}, "instance_id"),
        ({"instance_id": "x" * 129}, "instance_id"),
        ({"pulse_interval_ms": 99}, "pulse_interval_ms"),
        ({"pulse_interval_ms": 3_600_001}, "pulse_interval_ms"),
        ({"pulse_interval_ms": 150.5}, "pulse_interval_ms"),
        ({"pulse_interval_ms": True}, "pulse_interval_ms"),
        ({"request_timeout_ms": 10}, "request_timeout_ms"),
        ({"safe_mode_strategy": "closed"}, "safe_mode_strategy"),
        ({"safe_mode_max_rps": -1}, "safe_mode_max_rps"),
        ({"safe_mode_max_rps": float("inf")}, "safe_mode_max_rps"),
        ({"safe_mode_max_rps": "50"}, "safe_mode_max_rps"),
        ({"on_error": "print"}, "on_error"),
        ({"push": "false"}, "push"),
        ({"push": 1}, "push"),
        ({"push": None}, "push"),
        ({"agent_url": "localhost:9000"}, "agent_url"),
    ],
)
def test_bad_option_names_the_field(patch: dict, field: str) -> None:
    with pytest.raises(WaitstateError) as caught:
        WaitstateConfig(**{**GOOD, **patch})
    assert caught.value.code == "INVALID_OPTIONS"
    assert caught.value.field == field
    assert field in str(caught.value)


def test_base_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    options = {k: v for k, v in GOOD.items() if k != "base_url"}
    with pytest.raises(WaitstateError) as caught:
        WaitstateConfig(**options)
    assert caught.value.field == "base_url" and "WAITSTATE_BASE_URL" in str(caught.value)
    monkeypatch.setenv("WAITSTATE_BASE_URL", "http://127.0.0.1:8787/")
    assert WaitstateConfig(**options).base_url == "http://127.0.0.1:8787"
    monkeypatch.setenv("WAITSTATE_BASE_URL", "nonsense")
    with pytest.raises(WaitstateError) as bad:
        WaitstateConfig(**options)
    assert bad.value.field == "base_url" and "WAITSTATE_BASE_URL" in str(bad.value)


def test_defaults_are_those_of_the_other_sdks() -> None:
    config = WaitstateConfig(**GOOD)
    assert (config.pulse_interval_ms, config.safe_mode_strategy, config.safe_mode_max_rps, config.request_timeout_ms) == (
        5000,
        "open",
        50,
        10000,
    )
    assert config.site_id is None and config.agent_url is None
    assert config.push is True
    assert config.instance_id and WaitstateConfig(**GOOD).instance_id != config.instance_id  # a random id per config


def test_agent_mode_needs_no_keys() -> None:
    config = WaitstateConfig(publish_key="", secret_key="", agent_url="http://localhost:9000/")
    assert config.agent_url == "http://localhost:9000"


def test_the_secret_never_shows_in_repr() -> None:
    assert "sk_x" not in repr(WaitstateConfig(**GOOD))


def test_the_client_takes_only_a_config() -> None:
    with pytest.raises(WaitstateError) as caught:
        WaitstateClient(GOOD)  # type: ignore[arg-type]
    assert caught.value.field == "config"
