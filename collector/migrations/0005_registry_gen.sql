-- 0005: a count of the changes to the device registry, bumped by a
-- trigger at every change, by whichever process (the provisioning
-- commands, another instance, an operator's own SQL). A collector keeps
-- the registry record a device session looked up for the session's next
-- messages; each message's transaction reads the count, and when it has
-- moved since the record was read the message is judged again with a
-- fresh one. One row, bumped once per statement (a bulk add of 100,000
-- devices bumps it once).
CREATE TABLE registry_gen (
	one boolean PRIMARY KEY DEFAULT true CHECK (one),
	n   bigint NOT NULL
);
INSERT INTO registry_gen (n) VALUES (1);
CREATE FUNCTION mtc_registry_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE registry_gen SET n = n + 1;
	RETURN NULL;
END $$;
CREATE TRIGGER registry_devices_changed
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON registry_devices
	FOR EACH STATEMENT EXECUTE FUNCTION mtc_registry_changed();
