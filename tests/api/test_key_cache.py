"""The API's key cache: a checked key costs no look-up for a moment, and revocation still takes effect."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from api.app import create_app
from devices.keys import Role, create_key, revoke_key


def test_a_key_revoked_through_the_api_is_refused_at_once(settings, pool, db, city):
    _, admin = create_key(db, "toyota-city", Role.admin)
    viewer_id, viewer = create_key(db, "toyota-city", Role.viewer)
    with TestClient(create_app(settings.model_copy(update={"api_key_cache_s": 60.0}), pool)) as api:
        assert api.get("/v1/devices", headers={"X-API-Key": viewer}).status_code == 200  # now cached
        assert api.delete(f"/v1/keys/{viewer_id}", headers={"X-API-Key": admin}).status_code == 204
        assert api.get("/v1/devices", headers={"X-API-Key": viewer}).status_code == 401


def test_a_key_revoked_elsewhere_is_refused_within_the_cache_age(settings, pool, db, city):
    key_id, secret = create_key(db, "toyota-city", Role.viewer)
    with TestClient(create_app(settings.model_copy(update={"api_key_cache_s": 0.5}), pool)) as api:
        assert api.get("/v1/devices", headers={"X-API-Key": secret}).status_code == 200
        assert revoke_key(db, key_id)  # as the CLI or another API process would
        time.sleep(0.6)
        assert api.get("/v1/devices", headers={"X-API-Key": secret}).status_code == 401


def test_with_the_cache_off_every_request_looks_the_key_up(settings, pool, db, city):
    key_id, secret = create_key(db, "toyota-city", Role.viewer)
    with TestClient(create_app(settings.model_copy(update={"api_key_cache_s": 0.0}), pool)) as api:
        assert api.get("/v1/devices", headers={"X-API-Key": secret}).status_code == 200
        assert revoke_key(db, key_id)
        assert api.get("/v1/devices", headers={"X-API-Key": secret}).status_code == 401


def test_a_wrong_secret_for_a_cached_key_id_is_refused(settings, pool, db, city):
    key_id, secret = create_key(db, "toyota-city", Role.viewer)
    with TestClient(create_app(settings.model_copy(update={"api_key_cache_s": 60.0}), pool)) as api:
        assert api.get("/v1/devices", headers={"X-API-Key": secret}).status_code == 200
        forged = f"{key_id}.{'x' * 20}"
        assert api.get("/v1/devices", headers={"X-API-Key": forged}).status_code == 401
