-- Cluster mode: the burrowd nodes that share this database. A node upserts its row at start and
-- bumps last_seen on each heartbeat (times are the database's now(), so node clocks do not
-- matter); a row unseen for dead_after is dead, and the first surviving node to set its
-- stopped_at (lost_by: that survivor) closes its sessions. A graceful stop sets stopped_at with
-- lost_by null. Rows are kept, so the list shows stopped and dead nodes too.
create table nodes (
  id             text primary key check (id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
  advertise_addr text not null,
  relay_port     integer not null check (relay_port between 0 and 65535),
  -- SHA-256 fingerprint of the node's control certificate, pinned by nodes dialing its relay port.
  fingerprint    text not null default '',
  version        text not null,
  started_at     timestamptz not null,
  last_seen      timestamptz not null,
  stopped_at     timestamptz,
  lost_by        text
);

-- Work one node of the cluster does for all (e.g. evaluating alerts): held by node_id until
-- expires_at, renewed by its holder, taken by another node once it has expired.
create table cluster_leases (
  name       text primary key,
  node_id    text not null,
  expires_at timestamptz not null
);
