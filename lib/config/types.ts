/**
 * The validated, defaulted shape of Burrow's configuration. The YAML key names
 * are the contract (see the README's config reference); these types hold them
 * after parsing, with durations in milliseconds and sizes in bytes.
 *
 * @module
 */

import type { TunnelSpec } from "../protocol/mod.ts";
import type { Secret } from "../util/mod.ts";
import type { ServerAddr } from "./server_addr.ts";

/** Log output settings shared by both sides. */
export interface LogConfig {
  /** Lowest level written. Default `info`. */
  level: "debug" | "info" | "warn" | "error";
  /** `json` lines, or `text` for people. Default: `text` on a terminal, else `json`. */
  format: "json" | "text";
  /** Also append log lines to this file. Default: none (stderr only). */
  file?: string;
  /** Per-component levels. */
  levels?: Record<string, "debug" | "info" | "warn" | "error">;
  /** Also append warnings and errors to this file. */
  error_file?: string;
  /** Access log file (JSON lines). */
  access_file?: string;
  /** Rotate log files at this many bytes. Default 100 MB. */
  max_size: number;
  /** Rotated files kept. Default 5. */
  max_files: number;
}

/** The seed's ReconnectConfig. */
export interface ReconnectConfig {
  /** Attempts before giving up; 0 retries forever. Default 0. */
  max_retries: number;
  /** First delay in ms. Default 1000 (`1s`). */
  initial_delay: number;
  /** Upper bound of the delay in ms. Default 30000 (`30s`). */
  max_delay: number;
  /** Multiplier per attempt. Default 2. */
  backoff_factor: number;
  /** Randomise each delay (full jitter between delay/2 and delay). Default true. */
  enable_jitter: boolean;
  /**
   * Keep retrying when the server refuses the token (e.g. while it is being
   * rotated) instead of exiting with code 3. Default false.
   */
  retry_auth_failures: boolean;
  /**
   * Not a key: whether `max_retries` was written in the configuration rather
   * than defaulted. A written `max_retries: 0` also keeps retrying a server
   * address that answers like something other than burrowd, which otherwise
   * ends the client with exit code 2.
   */
  max_retries_written?: boolean;
}

/** `server.tls`. All paths optional: none → a generated self-signed certificate. */
export interface ServerTlsConfig {
  /** PEM certificate file. */
  cert_file?: string;
  /** PEM private key file. */
  key_file?: string;
  /** Mutual TLS: client certificates must be signed by this CA. */
  client_ca_file?: string;
  /** Oldest TLS version on the control port. Default `1.2`. */
  min_version?: "1.2" | "1.3";
}

/** `server.auth`. */
export interface ServerAuthConfig {
  /** Authentication method; only `token` so far. */
  method: "token";
  /**
   * Shared token; env `BURROW_TOKEN` overrides. When neither is set, burrowd
   * generates one and keeps it in `<data_dir>/token`.
   */
  token?: Secret;
  /** Failed logins one address may make in a burst before it is refused. Default 10. */
  max_failures: number;
  /** ms after which an address may make one more failed login. Default 6000. */
  failure_interval: number;
  /** Unauthenticated control connections one address may have open at once. Default 8. */
  max_handshakes: number;
}

/** `server.limits`. */
export interface ServerLimitsConfig {
  /** Default 10. */
  max_tunnels_per_client: number;
  /** Bytes per second per tunnel and direction; 0 = unlimited. Default 0. */
  max_bandwidth: number;
  /** Open connections per tunnel; 0 = unlimited. Default 0. */
  max_connections_per_tunnel: number;
}

/** `server.udp` and `client.udp`. */
export interface UdpConfig {
  /**
   * SO_RCVBUF and SO_SNDBUF of each UDP socket, bytes; 0 keeps the kernel's
   * default. Default 4 MiB.
   */
  socket_buffer: number;
}

/** `server.admin`. */
export interface AdminConfig {
  /** Listen address. */
  bind_addr: string;
  /** Listen port. */
  bind_port: number;
  /** Origins allowed by CORS. */
  cors_origins: string[];
}

/** `server.storage`. */
export interface StorageConfig {
  /** PostgreSQL URL; env `DATABASE_URL` overrides. */
  url?: Secret;
  /** Data directory (embedded database, generated certificate). Default `./burrow-data`. */
  data_dir: string;
  /** ms of history kept; 0 keeps everything. Default 30 days. */
  retention?: number;
  /** ms a PostgreSQL query may go unanswered before it counts as an outage; 0: no limit. Default 3 s. */
  query_timeout?: number;
}

/** The seed's alert rule form. */
export interface AlertRule {
  /** Name, unique within its list. */
  name: string;
  /** Expression over the exported metrics, e.g. `avg_latency > 1000ms`. */
  condition: string;
  /** ms */
  duration: number;
  /** How urgent a firing alert is. */
  severity: "critical" | "warning" | "info";
}

/** `server.alerting`: how rules run and where they notify. */
export interface AlertingConfig {
  /** Alertmanager-style webhook receiver. */
  webhook_url?: string;
  /** ms between evaluations. Default 5000. */
  evaluate_every: number;
  /** ms window of rates and averages. Default 60000. */
  window: number;
  /** Add the seed's three rules. Default true. */
  default_rules: boolean;
  /** ms between end-to-end probes of tunnels with `probe: true`. Default 30000. */
  probe_interval: number;
}

/** Everything under `server:`. */
export interface ServerConfig {
  /** Default `0.0.0.0`. */
  bind_addr: string;
  /** Default 7000; 0 picks a free port (logged). */
  bind_port: number;
  /** Default 1000. */
  max_clients: number;
  /** TLS settings. */
  tls: ServerTlsConfig;
  /** Client authentication. */
  auth: ServerAuthConfig;
  /** Resource limits. */
  limits: ServerLimitsConfig;
  /** Client addresses allowed on the control port; empty allows all. */
  allow_ips: string[];
  /** Client addresses refused on the control port. */
  deny_ips: string[];
  /** Ranges a tunnel may listen on, e.g. `"2000-3000,3306"`; empty = any port. */
  allow_ports: Array<[number, number]>;
  /** Public UDP sockets. */
  udp: UdpConfig;
  /** Public HTTP port for http tunnels. */
  vhost_http_port?: number;
  /** Public HTTPS port for https tunnels. */
  vhost_https_port?: number;
  /** Domain under which tunnels get subdomains. */
  subdomain_host?: string;
  /** Certificates of the HTTPS port by name. */
  vhost_https_certs: Array<{ domains: string[]; cert_file: string; key_file: string }>;
  /** Automatic certificates. */
  acme: AcmeConfig;
  /** Admin API listener. */
  admin: AdminConfig;
  /** Storage settings. */
  storage: StorageConfig;
  /** Log settings. */
  log: LogConfig;
  /** Heartbeat interval in ms the server asks clients to use. Default 10000. */
  heartbeat_interval: number;
  /** A session with no heartbeat for this long (ms) is closed. Default 30000. */
  heartbeat_timeout: number;
  /** Alert rules in the seed's form. */
  alerts: AlertRule[];
  /** Collect Prometheus metrics. Default true. */
  metrics: boolean;
  /** ms a new control connection has to log in. Default 10000. */
  handshake_timeout?: number;
  /** How alert rules run and notify. */
  alerting: AlertingConfig;
  /** Cluster mode; absent: this burrowd runs alone. */
  cluster?: ClusterConfig;
}

/**
 * `server.cluster`: several burrowd nodes on one PostgreSQL. After
 * validation every field is filled in (defaults, `BURROW_CLUSTER_SECRET`).
 */
export interface ClusterConfig {
  /** This node's name. Default: the host name. */
  node_id: string;
  /** Host or `host:port` other nodes reach the relay port at. Default: `bind_addr` if not a wildcard. */
  advertise_addr: string;
  /** Port of the node-to-node link; 0 picks a free one. Default 7001. */
  relay_port: number;
  /**
   * Shared secret of the nodes (16 characters at least); env
   * `BURROW_CLUSTER_SECRET` overrides. Absent only when `tls.client_ca_file`
   * is set: the nodes then authenticate with certificates.
   */
  secret?: Secret;
  /** ms between heartbeats of the node's row. Default 5000. */
  heartbeat: number;
  /** ms after which an unseen node is dead. Default 3 × `heartbeat`; at least 2 × `heartbeat`. */
  dead_after: number;
}

/** `server.acme`. */
export interface AcmeConfig {
  /** ACME directory URL. */
  directory_url: string;
  /** Contact address. */
  email?: string;
  /** PEM CA for the ACME server's HTTPS. */
  ca_file?: string;
  /** ms before expiry to renew. */
  renew_before: number;
}

/** `client.tls`. */
export interface ClientTlsConfig {
  /** PEM CA file to verify the server against. */
  ca_file?: string;
  /** PEM certificate file. */
  cert_file?: string;
  /** PEM private key file. */
  key_file?: string;
  /** Accept any server certificate. Only when set explicitly. Default false. */
  insecure_skip_verify: boolean;
}

/** Health check of a tunnel's local service (load balancing issue). */
export interface HealthCheckConfig {
  /** `tcp` connects to the service; `http` expects a 2xx/3xx from `path`. */
  type: "tcp" | "http";
  /** HTTP path probed by `http` checks. */
  path?: string;
  /** ms */
  interval: number;
  /** ms */
  timeout: number;
  /** Consecutive failures before the service counts as down. */
  max_failed: number;
}

/** `set` and `remove` of headers in one direction. */
export interface HeaderRulesConfig {
  /** Headers set (replacing). */
  set: Record<string, string>;
  /** Headers removed. */
  remove: string[];
}

/**
 * One entry of `client.tunnels`: the tunnel spec's settings (see
 * `protocol/tunnel_spec.ts`, whose rules the schema runs), with `domain`
 * folded into `custom_domains`, defaults filled in, secrets held as
 * {@linkcode Secret}s, and the client's own health check.
 */
export interface TunnelConfig extends
  Omit<
    TunnelSpec,
    "domain" | "local_addr" | "request_headers" | "response_headers" | "basic_auth" | "group_key"
  > {
  /** Default `127.0.0.1`. */
  local_addr: string;
  /** HTTP: request header changes. */
  request_headers?: HeaderRulesConfig;
  /** HTTP: response header changes. */
  response_headers?: HeaderRulesConfig;
  /** HTTP: visitors must log in. */
  basic_auth?: { user: string; password: Secret };
  /** Secret that lets a tunnel join its group. */
  group_key?: Secret;
  /** Probe of the local service. */
  health_check?: HealthCheckConfig;
}

/** `client.inspect`: the request inspector. */
export interface InspectConfig {
  /** `HOST:PORT` of its page and API. Default `127.0.0.1:4040`. */
  addr: string;
  /** Exchanges kept. Default 200. */
  max_requests: number;
  /** Body bytes kept per request and per response. Default 64 KiB. */
  max_body: number;
  /** Basic auth; required when `addr` is not a loopback address. */
  auth?: { user: string; password: Secret };
}

/** Everything under `client:`. */
export interface ClientConfig {
  /** burrowd host name or address (the single-address form). */
  server_addr?: string;
  /** Default 7000. */
  server_port: number;
  /** Several burrowd nodes, as written (absent in the single-address form). */
  server_addrs?: ServerAddr[];
  /**
   * The addresses to dial, always set: `server_addrs`, or `server_addr` and
   * `server_port` as the one entry.
   */
  servers: ServerAddr[];
  /** Sessions held at once, each to a different address (1-4). Default 1. */
  ha_connections: number;
  /** Env `BURROW_TOKEN` overrides. Required. */
  auth_token: Secret;
  /** `sha256:` followed by 64 hex digits (colons allowed). */
  server_fingerprint?: string;
  /** TLS settings. */
  tls: ClientTlsConfig;
  /** Reconnect backoff (the seed's ReconnectConfig). */
  reconnect: ReconnectConfig;
  /** Log settings. */
  log: LogConfig;
  /** A stable id for this client; default derived from hostname + config path. */
  client_id?: string;
  /** The local status endpoint. */
  status: { bind_addr: string; bind_port: number };
  /** The request inspector of HTTP tunnels; absent: off. */
  inspect?: InspectConfig;
  /** Tunnels this client publishes. */
  tunnels: TunnelConfig[];
  /** Local UDP sockets (one per visitor session). */
  udp: UdpConfig;
}
