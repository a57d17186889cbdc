-- The maintenance jobs' history. Run only when the table is missing (an agent starting beside
-- busy ones takes no lock). One row per job and cron tick: the unique key is what makes a
-- tick run on one agent only.
CREATE SCHEMA IF NOT EXISTS dbagent;
CREATE TABLE IF NOT EXISTS dbagent.maintenance_runs (
    id            bigserial PRIMARY KEY,
    job           text        NOT NULL,
    action        text        NOT NULL,
    scheduled_for timestamptz NOT NULL,
    agent         text        NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    outcome       text        NOT NULL DEFAULT 'running',
    statements    text[]      NOT NULL DEFAULT '{}',
    error         text,
    UNIQUE (job, scheduled_for)
);
