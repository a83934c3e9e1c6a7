/**
 * The schema of `server:`: every key with its check, default and the line
 * of the configuration reference that documents it.
 *
 * @module
 */

import { HOST_NAME, HOST_PATTERN } from "../util/mod.ts";

import {
  bool,
  cidr,
  duration,
  f,
  int,
  list,
  logFields,
  NAME,
  NODE_ID,
  object,
  oneOf,
  PORT,
  portRanges,
  req,
  secret,
  size,
  str,
  udpFields,
} from "./checks.ts";

export const serverSchema = object({
  bind_addr: f(str(), "0.0.0.0", "address of the control channel and of tunnel ports"),
  bind_port: f(PORT, 7000, "control channel port; `0` picks a free one (logged)"),
  max_clients: f(
    int(1, 1_000_000),
    1000,
    "connected clients at most; more are refused with `server_busy`",
  ),
  tls: f(
    object({
      cert_file: f(str(), undefined, "PEM certificate; none: self-signed in `<data_dir>/tls/`"),
      key_file: f(str(), undefined, "PEM private key of `cert_file`"),
      client_ca_file: f(
        str(),
        undefined,
        "mutual TLS: client certificates must chain to it (implies TLS 1.3 only)",
      ),
      min_version: f(
        oneOf("1.2", "1.3"),
        "1.2",
        "oldest TLS version accepted on the control port: `1.2` uses Deno's TLS (faster; two " +
          "Burrow ends always agree on 1.3), `1.3` uses node:tls and refuses TLS 1.2 hellos",
      ),
    }),
    { min_version: "1.2" },
  ),
  auth: f(
    object({
      method: f(oneOf("token"), "token", "how clients authenticate"),
      token: f(
        secret,
        undefined,
        "shared (admin) token; env `BURROW_TOKEN` overrides; none: generated into " +
          "`<data_dir>/token`",
        "generated",
      ),
      max_failures: f(
        int(1, 1_000_000),
        10,
        "failed logins (control port and admin API) one address (IPv6: one /64) may make in a " +
          "burst; then it is refused at once, before its token is checked, and told when to retry",
      ),
      failure_interval: f(
        duration,
        6_000,
        "one more failed login per address is allowed after this long (`6s`: 10 a minute)",
        "6s",
      ),
      max_handshakes: f(
        int(1, 10_000),
        8,
        "unauthenticated control connections one address may have open at once; more are " +
          "refused at once",
      ),
    }),
    { method: "token", max_failures: 10, failure_interval: 6_000, max_handshakes: 8 },
  ),
  limits: f(
    object({
      max_tunnels_per_client: f(int(1, 100_000), 10, "tunnels one session may declare"),
      max_connections_per_tunnel: f(
        int(0, 10_000_000),
        0,
        "open public connections (or UDP sessions) per tunnel; more are refused; `0`: unlimited",
      ),
      max_bandwidth: f(
        size,
        0,
        'bytes per second per tunnel and direction, e.g. `"100MB"` (TCP is paced, UDP datagrams ' +
          "over it are dropped)",
        "unlimited",
      ),
    }),
    { max_tunnels_per_client: 10, max_bandwidth: 0, max_connections_per_tunnel: 0 },
  ),
  allow_ports: f(portRanges, [], 'ports tunnels may take, e.g. `"2000-3000,3306"`', "any"),
  udp: udpFields("public"),
  allow_ips: f(
    list(cidr),
    [],
    "client addresses allowed on the control port (CIDR); empty allows all",
  ),
  deny_ips: f(
    list(cidr),
    [],
    "client addresses refused on the control port; wins over `allow_ips`",
  ),
  vhost_http_port: f(
    PORT,
    undefined,
    "public port of `http` tunnels, routed by `Host`; `0` picks a free one; unset: no HTTP port",
  ),
  vhost_https_port: f(
    PORT,
    undefined,
    "public TLS port of `https` tunnels (and `http` ones with `ssl_cert: auto`), routed by SNI " +
      "and `Host`; HTTP/2 and HTTP/1.1",
  ),
  subdomain_host: f(
    str(HOST_NAME, "a host name"),
    undefined,
    "domain under which tunnels get subdomains: `subdomain: app` serves `app.<subdomain_host>`",
  ),
  vhost_https_certs: f(
    list(object({
      domains: req(list(str(HOST_PATTERN, "a host name or *.wildcard")), "names it covers"),
      cert_file: req(str(), "PEM certificate chain"),
      key_file: req(str(), "PEM private key"),
    })),
    [],
    "certificates of the HTTPS port by name (re-read on reload); names without one use ACME " +
      "(tunnels with `ssl_cert: auto`) or the control port's certificate",
  ),
  acme: f(
    object({
      directory_url: f(
        str(/^https?:\/\/\S+$/, "an http(s) URL"),
        "https://acme-v02.api.letsencrypt.org/directory",
        "ACME directory (Let's Encrypt production by default)",
      ),
      email: f(str(), undefined, "contact address given to the ACME account"),
      ca_file: f(str(), undefined, "PEM CA trusted for the ACME server's own HTTPS (test servers)"),
      renew_before: f(
        duration,
        30 * 86_400_000,
        "renew certificates this long before expiry",
        "30d",
      ),
    }),
    {
      directory_url: "https://acme-v02.api.letsencrypt.org/directory",
      renew_before: 30 * 86_400_000,
    },
    "automatic certificates (HTTP-01 challenges answered on the HTTP port; stored in " +
      "`<data_dir>/certs`)",
  ),
  admin: f(
    object({
      bind_addr: f(str(), "127.0.0.1", "admin listener address"),
      bind_port: f(
        PORT,
        7500,
        "admin port: REST API `/api/v1`, `/metrics`, `/healthz`, `/readyz`; `0` picks a free one",
      ),
      cors_origins: f(
        list(str()),
        [],
        "browser origins allowed to call the API (the front end), e.g. `https://console.example.com`",
      ),
    }),
    { bind_addr: "127.0.0.1", bind_port: 7500, cors_origins: [] },
  ),
  storage: f(
    object({
      url: f(
        secret,
        undefined,
        "PostgreSQL URL, used instead of the embedded database; env `DATABASE_URL` overrides",
      ),
      data_dir: f(
        str(),
        "./burrow-data",
        "embedded database (`db/`), certificate (`tls/`), generated token",
      ),
      retention: f(
        duration,
        30 * 86_400_000,
        "metrics, logs, resolved alerts and closed sessions older than this are deleted " +
          "(hourly); `0` keeps everything",
        "30d",
      ),
      query_timeout: f(
        duration,
        3000,
        "a PostgreSQL query unanswered for this long fails as if the database were down " +
          "(writes are queued, cached tokens and tunnels serve); `0` waits forever",
        "3s",
      ),
    }),
    { data_dir: "./burrow-data", retention: 30 * 86_400_000, query_timeout: 3000 },
  ),
  cluster: f(
    object({
      node_id: f(
        NODE_ID,
        undefined,
        "this node's name in the cluster (`burrowd node list`, `sessions.node`, the `node` " +
          "label of metrics); up to 64 characters, starting with a letter or digit",
        "host name",
      ),
      advertise_addr: f(
        str(),
        undefined,
        "host or host:port at which the other nodes reach this node's relay port; required " +
          "when `bind_addr` is a wildcard",
        "`bind_addr`",
      ),
      relay_port: f(PORT, 7001, "port of the node-to-node link; `0` picks a free one"),
      secret: f(
        secret,
        undefined,
        "shared secret of the nodes (16 characters at least); env `BURROW_CLUSTER_SECRET` " +
          "overrides; not needed with `tls.client_ca_file` (nodes then present certificates)",
      ),
      heartbeat: f(
        duration,
        5_000,
        "how often the node records that it is alive (and renews the alerts lease)",
        "5s",
      ),
      dead_after: f(
        duration,
        undefined,
        "a node unseen for this long is dead: a surviving node closes its sessions and releases " +
          "its tunnels; at least 2 × `heartbeat`",
        "three times `heartbeat`",
      ),
    }),
    undefined,
    "cluster mode: several burrowd on one PostgreSQL (`storage.url`); unset: one burrowd alone",
  ),
  log: f(logFields(), undefined),
  metrics: f(bool, true, "collect Prometheus metrics (served at `/metrics` on the admin port)"),
  heartbeat_interval: f(duration, 10_000, "how often clients send heartbeats", "10s"),
  handshake_timeout: f(
    duration,
    10_000,
    "a new control connection must log in within this (slow or silent ones are closed)",
    "10s",
  ),
  heartbeat_timeout: f(duration, 30_000, "a session silent this long is closed", "30s"),
  alerts: f(
    list(object({
      name: req(NAME, "rule name, unique"),
      condition: req(str(), "expression over the metrics, e.g. `avg_latency > 1000ms`"),
      duration: f(duration, 0, "how long the condition must hold before firing", "0s"),
      severity: f(oneOf("critical", "warning", "info"), "warning", "how urgent"),
    })),
    [],
    undefined,
  ),
  alerting: f(
    object({
      webhook_url: f(
        str(/^https?:\/\/\S+$/, "an http(s) URL"),
        undefined,
        "POST firing and resolved alerts here (Alertmanager webhook JSON); retried with backoff",
      ),
      evaluate_every: f(duration, 5_000, "how often alert rules are evaluated", "5s"),
      window: f(duration, 60_000, "window of `avg_latency` and `error_rate`", "1m"),
      probe_interval: f(
        duration,
        30_000,
        "how often tunnels with `probe: true` are probed end to end (a failure counts as an error)",
        "30s",
      ),
      default_rules: f(
        bool,
        true,
        "add the seed's `tunnel_down`, `high_latency`, `high_error_rate` unless `alerts` " +
          "defines a rule of the same name",
      ),
    }),
    { evaluate_every: 5_000, window: 60_000, default_rules: true, probe_interval: 30_000 },
  ),
});
