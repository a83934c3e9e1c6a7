-- Members of a load-balancing group (options->>'group') share one public
-- port, so the port's uniqueness applies to tunnels outside groups only.
-- A group's port still clashes with any ungrouped tunnel (checked by burrowd).
drop index tunnels_remote_port;
create unique index tunnels_remote_port on tunnels ((type = 'udp'), remote_port)
  where remote_port is not null and remote_port <> 0 and enabled and (options->>'group') is null;
