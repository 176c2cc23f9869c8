"""NATS accounts, pure: a device's permissions are its two subjects, the accounts file is what nats-server reads."""

from __future__ import annotations

import json

import bcrypt
import pytest

from devices import nats_auth

PREFIX = "mimamori/v1"


def test_a_device_may_publish_its_two_subjects_over_mqtt_only_and_subscribe_to_nothing():
    perms = nats_auth.device_permissions(PREFIX, "acme", "soil.1")
    assert perms.publish == ("mimamori.v1.acme.soil//1.telemetry", "mimamori.v1.acme.soil//1.status")
    conf = perms.as_conf()
    assert conf["permissions"] == {
        "publish": {"allow": list(perms.publish)},
        "subscribe": {"deny": [">"]},
    }
    assert conf["allowed_connection_types"] == ["MQTT"]


@pytest.mark.parametrize("device_id", ["a+b", "a#", "a/b", "a*", "a>", "a b"])
def test_ids_that_would_widen_a_subject_are_refused(device_id):
    with pytest.raises(ValueError, match="wildcards"):
        nats_auth.device_permissions(PREFIX, "acme", device_id)


def test_the_ingestor_reads_through_jetstream_and_publishes_no_device_subject():
    perms = nats_auth.ingest_permissions()
    assert not any(s.startswith("mimamori") for s in perms.publish)
    assert perms.subscribe == ("_INBOX.>",)


def test_the_stream_holds_telemetry_and_status_of_every_device():
    assert nats_auth.stream_subjects(PREFIX) == ["mimamori.v1.*.*.telemetry", "mimamori.v1.*.*.status"]


def test_the_accounts_file_holds_bcrypt_hashes_that_check_and_no_password():
    salt = bcrypt.gensalt(4, prefix=b"2a")  # the cheapest cost: this test checks the form, not the strength
    users = [
        nats_auth.NatsUser(
            "dev-1", nats_auth.hash_password("s3cret", salt), nats_auth.device_permissions(PREFIX, "acme", "dev-1")
        )
    ]
    text = nats_auth.render_accounts(users, nats_auth.hash_password("sys", salt))
    assert "s3cret" not in text
    body = json.loads(text.removeprefix("accounts: ").split("\nsystem_account:")[0])
    (user,) = body[nats_auth.ACCOUNT]["users"]
    assert user["password"].startswith("$2a$") and bcrypt.checkpw(b"s3cret", user["password"].encode())
    assert body[nats_auth.ACCOUNT]["jetstream"] == "enabled"
    assert text.rstrip().endswith(f"system_account: {nats_auth.SYSTEM_ACCOUNT}")
