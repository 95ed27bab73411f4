-- 0003: history — every verified event, binding verification, alarm and
-- gap of a device, numbered per device (n) in the order they were
-- committed, plus a per-device heartbeat summary (heartbeats are not one
-- row each). history_heads holds a device's last n: every append takes
-- that row's lock, so a device's records are numbered in commit order
-- and a reader paging by n misses none, whichever instance wrote them.
CREATE TABLE history_heads (
	device       text PRIMARY KEY,
	last_n       bigint NOT NULL DEFAULT 0,
	hb_count     bigint NOT NULL DEFAULT 0,
	hb_first_seq bigint NOT NULL DEFAULT 0,
	hb_first_at  timestamptz,
	hb_last_seq  bigint NOT NULL DEFAULT 0,
	hb_last_at   timestamptz
);

CREATE TABLE history (
	device    text NOT NULL,
	n         bigint NOT NULL,
	kind      text NOT NULL,            -- event, binding, alarm, gap
	seq       bigint NOT NULL DEFAULT 0, -- the token's sequence number (0: none)
	signed_at timestamptz,              -- the token's iat (NULL: none)
	at        timestamptz NOT NULL,     -- received or raised (the collector's clock)
	detail    jsonb NOT NULL DEFAULT '{}',
	PRIMARY KEY (device, n)
);
-- Reading from a time on (--since), and retention per kind.
CREATE INDEX history_device_at ON history (device, at, n);
CREATE INDEX history_kind_at ON history (kind, at);
