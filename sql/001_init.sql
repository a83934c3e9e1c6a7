-- Burrow schema, version 1. Runs on PostgreSQL 13+ and on PGlite alike.

create table users (
  id          bigserial primary key,
  name        text not null unique check (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
  is_admin    boolean not null default false,
  disabled    boolean not null default false,
  created_at  timestamptz not null default now()
);

-- Keys that sign user tokens (JWT). The newest unretired key signs; every
-- unretired key verifies, so a key can be rotated without logging users out.
create table signing_keys (
  kid         text primary key,
  alg         text not null,
  secret      text not null,
  created_at  timestamptz not null default now(),
  retired_at  timestamptz
);

-- One row per issued token (the JWT's jti). Revoking sets revoked_at.
create table api_keys (
  id           text primary key,
  user_id      bigint not null references users(id) on delete cascade,
  scopes       jsonb not null default '[]',
  created_at   timestamptz not null default now(),
  expires_at   timestamptz,
  revoked_at   timestamptz,
  last_used_at timestamptz
);
create index api_keys_user on api_keys(user_id);

-- Tunnels: declared by a client in its YAML (source 'client'), or managed in
-- the database (source 'api') and pushed to the user's connected client.
create table tunnels (
  id             bigserial primary key,
  user_id        bigint not null references users(id) on delete cascade,
  name           text not null check (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
  type           text not null check (type in ('tcp', 'udp', 'http', 'https')),
  source         text not null default 'api' check (source in ('client', 'api')),
  client_id      text,
  local_addr     text not null default '127.0.0.1',
  local_port     integer check (local_port between 1 and 65535),
  remote_port    integer check (remote_port between 0 and 65535),
  custom_domains jsonb not null default '[]',
  subdomain      text,
  options        jsonb not null default '{}',
  enabled        boolean not null default true,
  status         text not null default 'offline' check (status in ('offline', 'active', 'failed')),
  active_port    integer,
  last_error     text,
  created_at     timestamptz not null default now(),
  updated_at     timestamptz not null default now(),
  unique (user_id, name)
);
-- A public port belongs to one tunnel (UDP ports are a separate space).
create unique index tunnels_remote_port on tunnels ((type = 'udp'), remote_port)
  where remote_port is not null and remote_port <> 0 and enabled;

-- One row per client connection.
create table sessions (
  id              text primary key,
  user_id         bigint references users(id) on delete set null,
  client_id       text not null,
  remote_addr     text not null,
  client_version  text not null default '',
  node            text not null,
  connected_at    timestamptz not null default now(),
  disconnected_at timestamptz,
  last_heartbeat  timestamptz,
  rtt_ms          double precision,
  bytes_in        bigint not null default 0,
  bytes_out       bigint not null default 0,
  close_reason    text
);
create index sessions_open on sessions(node) where disconnected_at is null;

-- Per-tunnel time buckets (one minute by default).
create table metrics (
  tunnel_id      bigint not null references tunnels(id) on delete cascade,
  bucket         timestamptz not null,
  bytes_in       bigint not null default 0,
  bytes_out      bigint not null default 0,
  connections    integer not null default 0,
  errors         integer not null default 0,
  latency_ms_sum double precision not null default 0,
  latency_count  integer not null default 0,
  primary key (tunnel_id, bucket)
);

-- Access and error events.
create table logs (
  id          bigserial primary key,
  at          timestamptz not null default now(),
  level       text not null check (level in ('debug', 'info', 'warn', 'error')),
  kind        text not null check (kind in ('access', 'error', 'event')),
  tunnel_id   bigint references tunnels(id) on delete set null,
  session_id  text,
  message     text not null,
  fields      jsonb not null default '{}'
);
create index logs_at on logs(at);

-- Alerts raised by the rules engine.
create table alerts (
  id           bigserial primary key,
  rule         text not null,
  severity     text not null check (severity in ('critical', 'warning', 'info')),
  state        text not null check (state in ('firing', 'resolved')),
  message      text not null default '',
  labels       jsonb not null default '{}',
  started_at   timestamptz not null default now(),
  resolved_at  timestamptz
);

-- Config changes reach every burrowd through NOTIFY burrow_config with
-- {"table", "op", "id", "user_id"}. Status columns the servers write
-- themselves (status, active_port, last_error, last_used_at) notify nobody.
create function burrow_notify_tunnels() returns trigger language plpgsql as $$
declare
  r tunnels;
begin
  if TG_OP = 'DELETE' then r := OLD; else r := NEW; end if;
  if TG_OP = 'UPDATE' and (OLD.user_id, OLD.name, OLD.type, OLD.client_id, OLD.local_addr,
      OLD.local_port, OLD.remote_port, OLD.custom_domains, OLD.subdomain, OLD.options,
      OLD.enabled) is not distinct from (NEW.user_id, NEW.name, NEW.type, NEW.client_id,
      NEW.local_addr, NEW.local_port, NEW.remote_port, NEW.custom_domains, NEW.subdomain,
      NEW.options, NEW.enabled) then
    return NEW;
  end if;
  perform pg_notify('burrow_config', json_build_object(
    'table', 'tunnels', 'op', lower(TG_OP), 'id', r.id, 'user_id', r.user_id,
    'source', r.source)::text);
  if TG_OP = 'UPDATE' and OLD.user_id <> NEW.user_id then
    perform pg_notify('burrow_config', json_build_object(
      'table', 'tunnels', 'op', 'delete', 'id', OLD.id, 'user_id', OLD.user_id,
      'source', OLD.source)::text);
  end if;
  return r;
end $$;
create trigger tunnels_notify after insert or update or delete on tunnels
  for each row execute function burrow_notify_tunnels();

create function burrow_notify_users() returns trigger language plpgsql as $$
begin
  if TG_OP = 'UPDATE' and (OLD.name, OLD.disabled, OLD.is_admin)
      is not distinct from (NEW.name, NEW.disabled, NEW.is_admin) then
    return NEW;
  end if;
  perform pg_notify('burrow_config', json_build_object(
    'table', 'users', 'op', lower(TG_OP), 'id', coalesce(NEW.id, OLD.id))::text);
  return coalesce(NEW, OLD);
end $$;
create trigger users_notify after update or delete on users
  for each row execute function burrow_notify_users();

create function burrow_notify_api_keys() returns trigger language plpgsql as $$
begin
  if TG_OP = 'UPDATE' and (OLD.revoked_at, OLD.expires_at, OLD.scopes)
      is not distinct from (NEW.revoked_at, NEW.expires_at, NEW.scopes) then
    return NEW;
  end if;
  perform pg_notify('burrow_config', json_build_object(
    'table', 'api_keys', 'op', lower(TG_OP), 'id', coalesce(NEW.id, OLD.id),
    'user_id', coalesce(NEW.user_id, OLD.user_id))::text);
  return coalesce(NEW, OLD);
end $$;
create trigger api_keys_notify after update or delete on api_keys
  for each row execute function burrow_notify_api_keys();
