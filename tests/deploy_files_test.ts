// The deployment files the repository ships (compose files, the cluster's node and client
// configs) are read as burrowd and burrow read them, so that a schema change cannot leave them
// behind. Docker is not run here: the compose files are checked as YAML and for what the README
// says of them.

import { parse } from "yaml";
import { assert, assertEquals } from "../lib/testing/mod.ts";
import { loadClientConfig, loadServerConfig, type ServerConfig } from "../lib/config/mod.ts";

const root = new URL("../", import.meta.url).pathname;
const cluster = `${root}deploy/cluster/`;
const NODES = ["n1", "n2", "n3"];

/** What the environment gives the nodes in compose.yaml (DATABASE_URL, BURROW_CLUSTER_SECRET). */
const fromEnvironment = {
  server: {
    storage: { url: "postgres://burrow:change-me@postgres:5432/burrow" },
    cluster: { secret: "a-cluster-secret-of-some-length" },
  },
};

type Service = {
  build?: unknown;
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, unknown>;
};

async function compose(path: string): Promise<{ services: Record<string, Service> }> {
  // merge: Compose resolves `<<: *anchor` (YAML 1.1 merge keys).
  return parse(await Deno.readTextFile(path), { merge: true });
}

Deno.test("compose.yaml (one burrowd with PostgreSQL) is valid YAML with both services", async () => {
  const doc = await compose(`${root}compose.yaml`);
  assertEquals(Object.keys(doc.services).sort(), ["burrowd", "postgres"]);
});

Deno.test("deploy/cluster: each node's config loads, and the nodes differ only in their name", async () => {
  const configs: ServerConfig[] = [];
  for (const id of NODES) {
    const config = await loadServerConfig(`${cluster}${id}.yaml`, fromEnvironment);
    assertEquals(config.cluster?.node_id, id);
    assertEquals(config.cluster?.advertise_addr, id, "advertise_addr is the compose service name");
    assert(config.tls.cert_file && config.tls.key_file, "one certificate shared by the nodes");
    configs.push(config);
  }
  // Every node serves every tunnel: the public side must be the same everywhere.
  const shared = (c: ServerConfig) =>
    JSON.stringify({ ...c, cluster: { ...c.cluster, node_id: "", advertise_addr: "" } });
  for (const config of configs.slice(1)) assertEquals(shared(config), shared(configs[0]!));
});

Deno.test("deploy/cluster/compose.yaml: PostgreSQL and three nodes wired as the README says", async () => {
  const doc = await compose(`${cluster}compose.yaml`);
  assertEquals(Object.keys(doc.services).sort(), ["n1", "n2", "n3", "postgres"]);
  assert(doc.services.postgres!.image?.startsWith("postgres:15"));
  const n1 = await loadServerConfig(`${cluster}n1.yaml`, fromEnvironment);
  for (const id of NODES) {
    const service = doc.services[id]!;
    assertEquals(service.build, "../..", `${id}: the repository's Dockerfile`);
    assertEquals(service.command, ["run", "--config", "/etc/burrow/burrowd.yaml"]);
    assert(service.volumes?.includes(`./${id}.yaml:/etc/burrow/burrowd.yaml:ro`), id);
    assert(service.volumes?.includes("./certs:/etc/burrow/certs:ro"), id);
    assert(n1.tls.cert_file?.startsWith("/etc/burrow/certs/"));
    for (const name of ["DATABASE_URL", "BURROW_TOKEN", "BURROW_CLUSTER_SECRET"]) {
      assert(service.environment?.[name], `${id}: ${name}`);
    }
    assert(service.environment!.DATABASE_URL!.includes("@postgres:5432/"));
    assert(service.depends_on && "postgres" in service.depends_on, id);
    assertEquals(service.healthcheck?.test.slice(1, 3), ["/usr/local/bin/burrowd", "healthcheck"]);
    // The public ports are published; the relay port is not.
    const published = (service.ports ?? []).map((p) => p.split(":").at(-1)!);
    for (const port of [n1.bind_port, n1.vhost_http_port]) {
      assert(published.includes(String(port)), `${id}: port ${port} published`);
    }
    assert(published.includes("2000-2009") && published.includes("2000-2009/udp"));
    assertEquals(n1.allow_ports, [[2000, 2009]]);
    assert(!published.includes(String(n1.cluster!.relay_port)), `${id}: relay port not published`);
  }
});

Deno.test("deploy/cluster/client.yaml loads, with several nodes and two sessions", async () => {
  const config = await loadClientConfig(`${cluster}client.yaml`, {
    client: {
      auth_token: "from BURROW_TOKEN",
      server_fingerprint: `sha256:${"ab".repeat(32)}`,
    },
  });
  assertEquals(config.ha_connections, 2);
  assertEquals(config.server_addrs?.length, 3);
  assertEquals(config.tunnels.map((t) => t.name), ["ssh", "web"]);
});
