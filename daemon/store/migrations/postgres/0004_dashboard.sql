-- The dashboard's live stream and history.
--
-- webhook_events, the outbox every job event goes through, gets a sequence
-- number so the event stream can tail it and resume after Last-Event-ID.
-- Numbers are taken at insert, so a transaction that commits late can make
-- a lower number visible after a higher one: the stream waits a short
-- grace for such gaps before passing them (daemon/events).
ALTER TABLE webhook_events ADD COLUMN seq BIGSERIAL;
CREATE UNIQUE INDEX webhook_events_seq ON webhook_events (seq);

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
