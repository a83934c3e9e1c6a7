import { assertEquals } from "../testing/mod.ts";
import { clientConfigFromObject } from "../config/mod.ts";
import { tunnelRequest } from "./requests.ts";

/** The first tunnel of a client config holding only `tunnel`. */
function tunnel(tunnel: Record<string, unknown>) {
  const config = clientConfigFromObject({
    client: {
      server_addr: "tunnel.example.com",
      auth_token: "t0ken-0123456789",
      tunnels: [tunnel],
    },
  });
  return config.tunnels[0]!;
}

Deno.test("tunnel request: a TCP tunnel sends its ports and nothing left at a default", () => {
  assertEquals(tunnelRequest(tunnel({ name: "ssh", type: "tcp", local_port: 22 })), {
    protocol: "tcp",
    local_port: 22,
    remote_port: 0,
  });
  assertEquals(
    tunnelRequest(
      tunnel({
        name: "db",
        type: "tcp",
        local_port: 5432,
        remote_port: 15432,
        compression: "gzip",
        allow_ips: ["10.0.0.0/8"],
      }),
    ),
    {
      protocol: "tcp",
      local_port: 5432,
      remote_port: 15432,
      compression: "gzip",
      allow_ips: ["10.0.0.0/8"],
    },
  );
});

Deno.test("tunnel request: UDP carries its session timeout, 30 s unless set", () => {
  assertEquals(tunnelRequest(tunnel({ name: "dns", type: "udp", local_port: 53 })), {
    protocol: "udp",
    local_port: 53,
    remote_port: 0,
    session_timeout: 30_000,
  });
});

Deno.test("tunnel request: HTTP sends its routing and rules, the basic-auth password revealed", () => {
  const request = tunnelRequest(tunnel({
    name: "web",
    type: "http",
    local_port: 8080,
    custom_domains: ["app.example.com"],
    basic_auth: { user: "ann", password: "s3cret-pass" },
  }));
  assertEquals(request, {
    protocol: "http",
    local_port: 8080,
    remote_port: 0,
    custom_domains: ["app.example.com"],
    basic_auth: { user: "ann", password: "s3cret-pass" },
  });
});

Deno.test("tunnel request: a group member sends its key, round robin and weight 1 by default", () => {
  const request = tunnelRequest(tunnel({
    name: "api-1",
    type: "tcp",
    local_port: 9000,
    remote_port: 19000,
    group: "api",
    group_key: "group-secret-123",
  }));
  assertEquals(request, {
    protocol: "tcp",
    local_port: 9000,
    remote_port: 19000,
    group: "api",
    group_key: "group-secret-123",
    load_balance: "round_robin",
    weight: 1,
  });
});
