-- The dashboard's live stream and history.
--
-- webhook_events, the outbox every job event goes through, gets a sequence
-- number so the event stream can tail it and resume after Last-Event-ID.
-- SQLite runs one writer at a time, so a number taken at insert follows
-- commit order. It comes from a one-row counter rather than MAX(seq) + 1,
-- so pruning the newest events never hands out a number twice.
CREATE TABLE webhook_event_seq (n BIGINT NOT NULL);
INSERT INTO webhook_event_seq (n) SELECT COALESCE(MAX(rowid), 0) FROM webhook_events;
ALTER TABLE webhook_events ADD COLUMN seq BIGINT;
UPDATE webhook_events SET seq = rowid;
CREATE UNIQUE INDEX webhook_events_seq ON webhook_events (seq);
CREATE TRIGGER webhook_events_number AFTER INSERT ON webhook_events WHEN NEW.seq IS NULL
BEGIN
    UPDATE webhook_event_seq SET n = n + 1;
    UPDATE webhook_events SET seq = (SELECT n FROM webhook_event_seq) WHERE rowid = NEW.rowid;
END;

-- Samples of what the jobs table cannot tell afterwards: the queue length
-- and running jobs (cluster-wide, as the sampling daemon saw them) and the
-- bytes this node moved since its previous sample. Times are microseconds
-- since the epoch; rows older than the stats retention are pruned.
CREATE TABLE stats_samples (
    node       TEXT NOT NULL,
    at         BIGINT NOT NULL,
    queued     INTEGER NOT NULL,
    running    INTEGER NOT NULL,
    bytes      BIGINT NOT NULL,
    PRIMARY KEY (node, at)
);
CREATE INDEX stats_samples_at ON stats_samples (at);
