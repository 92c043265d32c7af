-- Cron schedules (the seed's scheduled_jobs, plus time zone, policies and
-- next_run) and their execution history (the seed's schedule_executions,
-- plus due time, kind and lag). Times are microseconds since the epoch.
CREATE TABLE scheduled_jobs (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE,
    schedule          TEXT NOT NULL,
    timezone          TEXT NOT NULL,
    job_template_json TEXT NOT NULL,          -- the export request submitted at each run
    enabled           INTEGER NOT NULL DEFAULT 1,
    overlap           TEXT NOT NULL CHECK (overlap IN ('skip', 'queue', 'allow')),
    catch_up          TEXT NOT NULL CHECK (catch_up IN ('none', 'once')),
    end_at            BIGINT,
    max_runs          INTEGER,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    last_run          BIGINT,
    next_run          BIGINT,                 -- next due time; NULL once finished
    run_count         INTEGER NOT NULL DEFAULT 0,
    queued_due        BIGINT,                 -- overlap=queue: a due time waiting for the previous run
    created_by        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX scheduled_jobs_due ON scheduled_jobs (next_run) WHERE enabled = 1;

CREATE TABLE schedule_executions (
    id               BIGSERIAL PRIMARY KEY,
    schedule_id      TEXT NOT NULL REFERENCES scheduled_jobs (id) ON DELETE CASCADE,
    job_id           TEXT,                    -- NULL when skipped or not submitted
    executed_at      BIGINT NOT NULL,
    due_at           BIGINT,                  -- NULL for manual runs
    kind             TEXT NOT NULL CHECK (kind IN ('scheduled', 'catch_up', 'manual', 'queued')),
    status           TEXT NOT NULL,           -- submitted, skipped, not_submitted, succeeded, failed, cancelled
    detail           TEXT NOT NULL DEFAULT '',
    duration_seconds DOUBLE PRECISION,
    lag_seconds      DOUBLE PRECISION
);
-- One execution per schedule and due time, whichever daemon fires it.
CREATE UNIQUE INDEX schedule_executions_due ON schedule_executions (schedule_id, due_at);
CREATE INDEX schedule_executions_schedule ON schedule_executions (schedule_id, id);
CREATE INDEX schedule_executions_job ON schedule_executions (job_id);
