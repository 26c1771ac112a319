"""/healthz tells a load balancer whether the database and broker are reachable."""

from __future__ import annotations


def test_healthy_system_answers_ok(app, db_session):
    response = app.get("/healthz")
    assert response.json == {"status": "ok", "database": {"ok": True}, "broker": {"ok": True}}


def test_unreachable_broker_answers_503_without_secrets(make_app, db_session):
    response = make_app(broker_url="redis://:hunter2-password@127.0.0.1:1/0").get(
        "/healthz", expect_errors=True
    )
    assert response.status_int == 503
    assert response.json["broker"]["ok"] is False
    assert response.json["database"] == {"ok": True}
    assert "hunter2" not in response.text and "127.0.0.1" not in response.text
