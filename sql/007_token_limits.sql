-- What a token may publish: tunnel types, port ranges and host names
-- ({"types": [...], "ports": "2000-3000", "domains": ["*.example.com"]}).
-- Empty means no limit beyond the user's and the server's own.
alter table api_keys add column limits jsonb not null default '{}';
