-- 0002: the registry — devices, SCSs and grants, provisioned while the
-- collector runs (mtccollector device|scs|grant|revoke), instead of only
-- read from the configuration file at start.
CREATE TABLE registry_devices (
	id                   text PRIMARY KEY,
	psk_identity         text UNIQUE,          -- NULL: certificate mode only
	psk                  bytea,
	key_pin              bytea,                -- SHA-256 of the SubjectPublicKeyInfo
	public_key           bytea NOT NULL,       -- Ed25519, verifies the device's tokens
	binding_imsi         bytea,
	binding_iccid        bytea,
	heartbeat_timeout_ms bigint NOT NULL DEFAULT 0, -- 0: the collector's heartbeat_timeout
	added_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX registry_devices_pin ON registry_devices (key_pin) WHERE key_pin IS NOT NULL;

CREATE TABLE registry_scs (
	name         text PRIMARY KEY,
	psk_identity text NOT NULL UNIQUE,
	psk          bytea NOT NULL,
	added_at     timestamptz NOT NULL DEFAULT now()
);

-- A device need not be registered to be granted (a grant may come first);
-- removing a device removes its grants.
CREATE TABLE grants (
	scs    text NOT NULL REFERENCES registry_scs (name) ON DELETE CASCADE,
	device text NOT NULL,
	class  text NOT NULL,
	PRIMARY KEY (scs, device, class)
);
CREATE INDEX grants_device ON grants (device);
