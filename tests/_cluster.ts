/**
 * A cluster for end-to-end tests: burrowd nodes n1, n2, … on 127.0.0.1, .2,
 * … (Linux routes all of 127/8 to loopback, so every node can open the same
 * tunnel port), on one database, sharing a certificate, with a short
 * heartbeat; and clients of it.
 *
 * @module
 */

import { fingerprintOf, generateSelfSigned } from "../lib/transport/mod.ts";
import { eventually } from "../lib/testing/mod.ts";
import { Proc } from "./_procs.ts";

/** The shared token of the nodes. */
export const CLUSTER_TOKEN = "cluster-e2e-token";
/** The nodes' cluster secret. */
export const CLUSTER_SECRET = "cluster-e2e-secret-of-some-length";
const TOKEN = CLUSTER_TOKEN;
const SECRET = CLUSTER_SECRET;

/**
 * A port free for TCP and UDP on 127.0.0.1–`hosts` a moment ago (one
 * address more than the nodes started, for a test's extra node), chosen at
 * random below the kernel's ephemeral range (32768 up on Linux). Every node
 * opens a cluster's tunnel ports after it has bound its own relay, admin and
 * control ports to port 0; a port from `freePort()` is one the kernel had
 * just handed out, and it handed the same one to a node's relay port once
 * (the group test failed with "TCP port … is in use on node n3").
 */
function sharedPort(hosts: number): number {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const held: Array<{ close(): void }> = [];
    try {
      for (let i = 1; i <= hosts; i++) {
        const hostname = `127.0.0.${i}`;
        held.push(Deno.listen({ hostname, port }));
        held.push(Deno.listenDatagram({ transport: "udp", hostname, port }));
      }
      return port;
    } catch {
      // Taken on one of the addresses: another.
    } finally {
      for (const h of held) h.close();
    }
  }
  throw new Error("No port below 32768 is free on the test's loopback addresses");
}

/** One node as started. */
export interface ClusterNode {
  id: string;
  host: string;
  port: number;
  admin: number;
  proc: Proc;
}

/** The nodes, their shared certificate and the ports every node serves tunnels on. */
export interface Cluster extends AsyncDisposable {
  nodes: ClusterNode[];
  fingerprint: string;
  dir: string;
  vhost: number;
  udp: number;
  tcp: number;
  start(i: number, secret?: string, port?: number): Promise<ClusterNode>;
}

/**
 * Three nodes (or `count`) on one database, with the same certificate and
 * vhost port; with `mutual`, nodes and clients show certificates of its CA
 * instead of a cluster secret.
 */
export async function startCluster(
  url: string,
  count = 3,
  mutual?: { ca: string; node: { cert: string; key: string } },
): Promise<Cluster> {
  const dir = await Deno.makeTempDir({ prefix: "burrow-cluster-" });
  const { cert, key } = mutual?.node ?? await generateSelfSigned(["localhost"]);
  await Deno.writeTextFile(`${dir}/server.crt`, cert);
  await Deno.writeTextFile(`${dir}/server.key`, key);
  if (mutual) await Deno.writeTextFile(`${dir}/ca.crt`, mutual.ca);
  const tls = `{cert_file: "${dir}/server.crt", key_file: "${dir}/server.key"${
    mutual ? `, client_ca_file: "${dir}/ca.crt"` : ""
  }}`;
  const vhost = sharedPort(count + 1);
  const cluster: Cluster = {
    nodes: [],
    fingerprint: fingerprintOf(cert),
    dir,
    vhost,
    udp: sharedPort(count + 1),
    tcp: sharedPort(count + 1),
    async start(i, secret = SECRET, port = 0) {
      const id = `n${i + 1}`;
      const host = `127.0.0.${i + 1}`;
      const path = `${dir}/${id}.yaml`;
      await Deno.writeTextFile(
        path,
        `server:
  bind_addr: ${host}
  bind_port: ${port}
  vhost_http_port: ${vhost}
  auth: {method: token, token: "${TOKEN}"}
  tls: ${tls}
  storage: {url: "${url}", data_dir: "${dir}/${id}-data"}
  admin: {bind_addr: ${host}, bind_port: 0}
  log: {level: info, format: json}
  cluster:
    node_id: ${id}
    advertise_addr: ${host}
    relay_port: 0
${mutual ? "" : `    secret: "${secret}"\n`}    heartbeat: 300ms
    dead_after: 1200ms
`,
      );
      const proc = new Proc("server", ["--config", path]);
      try {
        const ready = await proc.waitFor((e) => e.msg === "control channel listening", 60_000);
        const admin = await proc.waitFor((e) => e.msg === "admin listening", 10_000);
        const node = { id, host, port: ready.port as number, admin: admin.port as number, proc };
        cluster.nodes[i] = node;
        return node;
      } catch (error) {
        await proc[Symbol.asyncDispose]();
        throw error;
      }
    },
    async [Symbol.asyncDispose]() {
      for (const node of cluster.nodes) await node?.proc[Symbol.asyncDispose]();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
  try {
    for (let i = 0; i < count; i++) await cluster.start(i);
  } catch (error) {
    await cluster[Symbol.asyncDispose]();
    throw error;
  }
  return cluster;
}

/** A client of `cluster` with `yaml` under `client:` (its addresses and tunnels). */
export async function startClusterClient(
  cluster: Cluster,
  yaml: string,
  token = TOKEN,
  trust = `server_fingerprint: "${cluster.fingerprint}"`,
): Promise<Proc> {
  const path = `${cluster.dir}/client-${crypto.randomUUID().slice(0, 6)}.yaml`;
  await Deno.writeTextFile(
    path,
    `client:
  auth_token: "${token}"
  ${trust}
  reconnect: {max_retries: 0, initial_delay: 100ms, max_delay: 500ms, enable_jitter: false}
  log: {level: info, format: json}
${yaml}`,
  );
  return new Proc("client", ["--config", path], { BURROW_NO_STATUS_LINE: "1" });
}

/** Waits until one of `survivors` (whichever claims it) logs that node `id` is lost. */
export function nodeLost(survivors: ClusterNode[], id: string) {
  return eventually(
    `node ${id} found dead`,
    () =>
      survivors.some((n) => n.proc.events.some((e) => e.msg === "node lost" && e.node === id)) ||
      undefined,
    10_000,
  );
}

/** Waits until node `node` logs that it relays `tunnel`. */
export function relayOpened(node: ClusterNode, tunnel: string, from = 0) {
  return node.proc.waitFor((e) => e.msg === "relay opened" && e.tunnel === tunnel, 20_000, from);
}
