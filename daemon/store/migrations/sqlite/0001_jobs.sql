-- Jobs: the product's view of every export. River's river_job rows carry
-- only {"job_id": …}; this table is the truth users see.
CREATE TABLE jobs (
    id                  TEXT PRIMARY KEY,           -- UUIDv7: sorts by creation
    provider            TEXT NOT NULL,
    vm                  TEXT NOT NULL,
    spec                TEXT NOT NULL,              -- JSON Spec: the export request with defaults applied
    state               TEXT NOT NULL CHECK (state IN ('queued','running','succeeded','failed','cancelled')),
    submitted_by        TEXT NOT NULL DEFAULT '',
    idempotency_key     TEXT,
    request_hash        TEXT,
    attempt             INTEGER NOT NULL DEFAULT 0,
    max_attempts        INTEGER NOT NULL,
    river_job_id        BIGINT,
    node_id             TEXT,
    heartbeat_at        BIGINT,
    cancel_requested_at BIGINT,
    phase               TEXT NOT NULL DEFAULT '',
    bytes_done          BIGINT NOT NULL DEFAULT 0,
    bytes_total         BIGINT NOT NULL DEFAULT 0,
    rate_bps            REAL NOT NULL DEFAULT 0,
    eta_seconds         REAL,
    error               TEXT NOT NULL DEFAULT '',
    error_kind          TEXT NOT NULL DEFAULT '',
    result              TEXT,                       -- JSON ExportResult
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    started_at          BIGINT,
    finished_at         BIGINT,
    next_attempt_at     BIGINT
);
CREATE UNIQUE INDEX jobs_idempotency ON jobs (submitted_by, idempotency_key);
CREATE INDEX jobs_state_id ON jobs (state, id);
CREATE INDEX jobs_provider_id ON jobs (provider, id);
CREATE INDEX jobs_created_at ON jobs (created_at);
CREATE INDEX jobs_running_heartbeat ON jobs (heartbeat_at) WHERE state = 'running';

CREATE TABLE job_logs (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id  TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    at      BIGINT NOT NULL,
    level   TEXT NOT NULL,
    message TEXT NOT NULL,
    attrs   TEXT                                    -- JSON object, may be NULL
);
CREATE INDEX job_logs_job_id ON job_logs (job_id, id);
