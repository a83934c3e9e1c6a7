-- Ids of batched writes (sessions, metrics, logs) whose commit may be in doubt: a batch whose
-- connection was cut while committing is retried under the same id, and an id already here
-- means it was written, so counters and events are never written twice. Ids of batches known
-- written are deleted with the next batch; the table holds a handful of rows.
create table write_batches (
  id uuid primary key,
  written_at timestamptz not null default now()
);
