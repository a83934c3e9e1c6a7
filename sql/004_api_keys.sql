-- API keys next to JWTs: random secrets shown once, stored only as a
-- SHA-256 hash and found by the prefix they carry (bk_<prefix>_<secret>).
alter table api_keys add column kind text not null default 'jwt' check (kind in ('jwt', 'key'));
alter table api_keys add column secret_hash text;
