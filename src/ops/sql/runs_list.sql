-- The latest runs, newest first; $1 a job name or NULL for all, $2 how many.
SELECT id, job, action, scheduled_for::text AS scheduled_for, agent, started_at::text AS started_at,
       finished_at::text AS finished_at, extract(epoch FROM finished_at - started_at)::float8 AS seconds,
       outcome, statements, error
FROM dbagent.maintenance_runs
WHERE $1::text IS NULL OR job = $1
ORDER BY started_at DESC, id DESC
LIMIT $2
