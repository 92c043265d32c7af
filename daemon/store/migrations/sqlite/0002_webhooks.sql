-- Webhook endpoints, the events to send them (the outbox, written in the
-- same transaction as the job change that caused each event), one delivery
-- per (event, endpoint), and every attempt of a delivery.
CREATE TABLE webhook_endpoints (
    id                    TEXT PRIMARY KEY,
    url                   TEXT NOT NULL,
    description           TEXT NOT NULL DEFAULT '',
    events                TEXT NOT NULL,               -- JSON array of patterns
    headers               TEXT NOT NULL DEFAULT '{}',  -- JSON object; values are secrets
    secret                TEXT NOT NULL,               -- whsec_...
    previous_secret       TEXT,
    previous_secret_until BIGINT,
    enabled               INTEGER NOT NULL DEFAULT 1,
    disabled_reason       TEXT NOT NULL DEFAULT '',
    timeout_ms            BIGINT NOT NULL,
    max_retries           INTEGER NOT NULL,
    source                TEXT NOT NULL CHECK (source IN ('config', 'api')),
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);

CREATE TABLE webhook_events (
    id         TEXT PRIMARY KEY,                       -- msg_…: the webhook-id header
    type       TEXT NOT NULL,
    payload    TEXT NOT NULL,                          -- the exact body sent
    created_at BIGINT NOT NULL
);
CREATE INDEX webhook_events_created ON webhook_events (created_at);

CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    event_id        TEXT NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_node      TEXT,
    lease_until     BIGINT,
    last_status     INTEGER,
    last_error      TEXT NOT NULL DEFAULT '',
    last_latency_ms BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    delivered_at    BIGINT,
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);

CREATE TABLE webhook_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    at          BIGINT NOT NULL,
    status      INTEGER,
    latency_ms  BIGINT NOT NULL,
    error       TEXT NOT NULL DEFAULT '',
    response    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);
