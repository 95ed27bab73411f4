-- 0004: many collector instances on one database. Independent of 0003
-- (which a parallel branch adds): the runner applies every version a
-- database lacks, in order, so either may come first.

-- When a device's heartbeat is next due: its last heartbeat (or, before
-- the first, the last time it was heard from) plus its timeout, written
-- in the transaction that accepts its message; NULL once it is flagged
-- overdue (or never heard from). The overdue check claims due rows from
-- this index with FOR UPDATE SKIP LOCKED, so each silence is raised by
-- one instance, and a pass costs what is due, not the fleet.
ALTER TABLE devices ADD COLUMN next_due timestamptz;
-- Devices heard from before this version: due after their registered
-- timeout, or the default heartbeat_timeout (35 min), until their next
-- message sets the collector's own.
UPDATE devices d SET next_due = coalesce(d.last_heartbeat, d.last_seen) + coalesce(
		(SELECT CASE WHEN r.heartbeat_timeout_ms > 0 THEN r.heartbeat_timeout_ms * interval '1 millisecond' END
			FROM registry_devices r WHERE r.id = d.id),
		interval '35 minutes')
	WHERE NOT d.overdue AND d.last_seen IS NOT NULL;
CREATE INDEX devices_next_due ON devices (next_due) WHERE next_due IS NOT NULL;
DROP INDEX IF EXISTS devices_watched;

-- The collector instances sharing the database, each with a lease it
-- renews (lease_until, in the database's clock). An instance whose lease
-- ran out is dead (killed, partitioned); any instance deletes it, and
-- its sessions with it.
CREATE TABLE instances (
	id          text PRIMARY KEY,
	started_at  timestamptz NOT NULL DEFAULT now(),
	lease_until timestamptz NOT NULL
);

-- Which instance holds each device's DTLS session (the newest one: a
-- device reconnecting elsewhere moves its row).
CREATE TABLE sessions (
	device   text PRIMARY KEY,
	instance text NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
	since    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sessions_instance ON sessions (instance);

-- SCS requests relayed from the instance an SCS asked to the one holding
-- the device's session: the asker inserts a row and notifies the holder
-- (pg_notify on the holder's channel, payload the id); the holder
-- performs it and writes the answer here, then notifies the asker.
CREATE TABLE relay (
	id         bigserial PRIMARY KEY,
	asker      text NOT NULL,
	holder     text NOT NULL,
	device     text NOT NULL,
	scs        text NOT NULL,
	class      text NOT NULL,
	payload    bytea NOT NULL DEFAULT '',
	flags      integer NOT NULL DEFAULT 0, -- 1: payload is JSON, 2: answer in JSON
	created_at timestamptz NOT NULL DEFAULT now(),
	answered   boolean NOT NULL DEFAULT false,
	code       integer NOT NULL DEFAULT 0,
	body       bytea,
	max_age    bigint NOT NULL DEFAULT 0,
	queued     boolean NOT NULL DEFAULT false
);
CREATE INDEX relay_created ON relay (created_at);

-- Which instances have SCSs observing a device's class (events, status),
-- so the instance where the device's message arrives notifies them too.
CREATE TABLE observed (
	device   text NOT NULL,
	class    text NOT NULL,
	instance text NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
	PRIMARY KEY (device, class, instance)
);
