-- Per-user policy: which client ids may log in as the user, which public
-- ports the user's tunnels may take, and which addresses the user's clients
-- may connect from. Empty / null means "no extra restriction".
alter table users add column allowed_clients jsonb not null default '[]';
alter table users add column allow_ports text;
alter table users add column allow_ips jsonb not null default '[]';
alter table users add column deny_ips jsonb not null default '[]';

-- Policy changes notify like the other user changes (caches drop the user).
create or replace function burrow_notify_users() returns trigger language plpgsql as $$
begin
  if TG_OP = 'UPDATE' and (OLD.name, OLD.disabled, OLD.is_admin, OLD.allowed_clients,
      OLD.allow_ports, OLD.allow_ips, OLD.deny_ips)
      is not distinct from (NEW.name, NEW.disabled, NEW.is_admin, NEW.allowed_clients,
      NEW.allow_ports, NEW.allow_ips, NEW.deny_ips) then
    return NEW;
  end if;
  perform pg_notify('burrow_config', json_build_object(
    'table', 'users', 'op', lower(TG_OP), 'id', coalesce(NEW.id, OLD.id))::text);
  return coalesce(NEW, OLD);
end $$;
