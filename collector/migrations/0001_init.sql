-- 0001: device state, alarms, SCS audit (what state.json, alarms.log and
-- audit.log held). One row per device; zero times are NULL.
CREATE TABLE devices (
	id             text PRIMARY KEY,
	last_seq       bigint NOT NULL DEFAULT 0,
	consumed       bigint[] NOT NULL DEFAULT '{}',
	boot_count     bigint NOT NULL DEFAULT 0,
	binding_imsi   bytea,
	binding_iccid  bytea,
	last_seen      timestamptz,
	last_heartbeat timestamptz,
	overdue        boolean NOT NULL DEFAULT false,
	status         bytea,
	status_at      timestamptz,
	last_event     jsonb,
	trigger_seq    bigint NOT NULL DEFAULT 0,
	scs_seq        jsonb NOT NULL DEFAULT '{}',
	accepted       bigint NOT NULL DEFAULT 0,
	duplicates     bigint NOT NULL DEFAULT 0,
	mdt_cursor     jsonb,
	mdt_records    bigint NOT NULL DEFAULT 0,
	mdt_pulled_at  timestamptz
);

-- The heartbeat-overdue check reads the devices heard from and not flagged.
CREATE INDEX devices_watched ON devices (id) WHERE last_seen IS NOT NULL AND NOT overdue;
CREATE INDEX devices_overdue ON devices (id) WHERE overdue;

CREATE TABLE alarms (
	id     bigserial PRIMARY KEY,
	at     timestamptz NOT NULL,
	device text NOT NULL,
	kind   text NOT NULL,
	detail text NOT NULL
);
CREATE INDEX alarms_device ON alarms (device, id);

CREATE TABLE audit (
	id       bigserial PRIMARY KEY,
	at       timestamptz NOT NULL,
	scs      text NOT NULL,
	method   text NOT NULL,
	path     text NOT NULL,
	device   text NOT NULL DEFAULT '',
	class    text NOT NULL DEFAULT '',
	decision text NOT NULL,
	code     text NOT NULL
);
CREATE INDEX audit_scs ON audit (scs, id);
