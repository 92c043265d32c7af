-- The cluster: every daemon sharing this database registers here and
-- heartbeats; one row holds the leader's lease. Times are microseconds
-- since the epoch, by the writing daemon's clock (as job leases are).
CREATE TABLE cluster_nodes (
    id          TEXT PRIMARY KEY,          -- the daemon's node id (<data_dir>/node-id)
    advertise   TEXT NOT NULL DEFAULT '',  -- API base URL other members and clients can reach
    version     TEXT NOT NULL DEFAULT '',
    started_at  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL,
    stopped_at  BIGINT,                    -- set by a clean shutdown; NULL while running (or after a crash)
    running     INTEGER NOT NULL DEFAULT 0, -- exports running on the node at its last heartbeat
    capacity    INTEGER NOT NULL DEFAULT 0  -- its jobs.max_concurrent
);

-- One row: the leader lease. A node leads while it holds an unexpired
-- lease; term grows with every change of holder.
CREATE TABLE cluster_leader (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    node_id     TEXT,
    term        BIGINT NOT NULL DEFAULT 0,
    acquired_at BIGINT,
    expires_at  BIGINT NOT NULL DEFAULT 0
);
INSERT INTO cluster_leader (id) VALUES (1);
