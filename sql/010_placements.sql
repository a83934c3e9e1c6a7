-- Cluster mode: which node holds which tunnel. A node writes a row when a tunnel of one of its
-- sessions opens and deletes it when the tunnel closes; every other node opens the same public
-- side (port, host names, group) and relays its visitors to the node of the row. The request is
-- the tunnel as opened (the port it got, the host names it serves), so that every node opens
-- the same thing. Rows of a node found dead are deleted by the survivor that finds it.
create table placements (
  node_id    text not null,
  session_id text not null,
  tunnel     text not null,
  user_id    bigint references users(id) on delete cascade,
  user_name  text not null default '',
  client_id  text not null,
  tunnel_id  bigint references tunnels(id) on delete set null,
  type       text not null check (type in ('tcp', 'udp', 'http', 'https')),
  port       integer not null default 0,
  request    jsonb not null,
  -- A group member's health as its client reports it: other nodes' relays of it follow.
  healthy    boolean not null default true,
  placed_at  timestamptz not null default now(),
  primary key (node_id, session_id, tunnel)
);
create index placements_session on placements(session_id);

-- Every change reaches every node through NOTIFY burrow_placements with the row's key.
create function burrow_notify_placements() returns trigger language plpgsql as $$
declare
  r placements;
begin
  if TG_OP = 'DELETE' then r := OLD; else r := NEW; end if;
  perform pg_notify('burrow_placements', json_build_object(
    'op', lower(TG_OP), 'node_id', r.node_id, 'session_id', r.session_id,
    'tunnel', r.tunnel)::text);
  return r;
end $$;
create trigger placements_notify after insert or update or delete on placements
  for each row execute function burrow_notify_placements();

-- Each node's tunnel windows (connections, errors, first-byte latency, and the status of the
-- tunnels it holds), written with its heartbeat: the node that evaluates alert rules for the
-- cluster merges them with its own.
alter table nodes add column stats jsonb not null default '[]';
