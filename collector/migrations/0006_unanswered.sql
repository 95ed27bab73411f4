-- 0006: challenges whose answer never came in (the request failed, the
-- collector stopped): each may have taken a sequence number of the
-- device, so the first gap after them is that much smaller (see
-- unansweredChallenge in server.go).
ALTER TABLE devices ADD COLUMN unanswered bigint NOT NULL DEFAULT 0 CHECK (unanswered >= 0);
