-- Per-user bandwidth limit (bytes per second per direction, shared by all of
-- the user's tunnels on a server); null = only the per-tunnel limit applies.
alter table users add column max_bandwidth bigint check (max_bandwidth > 0);

create or replace function burrow_notify_users() returns trigger language plpgsql as $$
begin
  if TG_OP = 'UPDATE' and (OLD.name, OLD.disabled, OLD.is_admin, OLD.allowed_clients,
      OLD.allow_ports, OLD.allow_ips, OLD.deny_ips, OLD.max_bandwidth)
      is not distinct from (NEW.name, NEW.disabled, NEW.is_admin, NEW.allowed_clients,
      NEW.allow_ports, NEW.allow_ips, NEW.deny_ips, NEW.max_bandwidth) then
    return NEW;
  end if;
  perform pg_notify('burrow_config', json_build_object(
    'table', 'users', 'op', lower(TG_OP), 'id', coalesce(NEW.id, OLD.id))::text);
  return coalesce(NEW, OLD);
end $$;
