import { assert, assertEquals } from "../testing/mod.ts";
import {
  type HeldTunnel,
  type HolderSession,
  nameHolder,
  nameTakenMessage,
  portHeld,
  portHolder,
  portTakenMessage,
} from "./holders.ts";
import type { Principal } from "./login.ts";

const ann: Principal = { userId: 1, userName: "ann", tokenId: "t1" };
const bob: Principal = { userId: 2, userName: "bob", tokenId: "t2" };
const root: Principal = { userId: 3, userName: "admin", tokenId: null, admin: true };

function session(principal: Principal, clientId: string, tunnels: HeldTunnel[]): HolderSession {
  return {
    principal,
    clientId,
    remote: "192.0.2.7:40000",
    tunnels: new Map(tunnels.map((t) => [t.name, t])),
  };
}

const ssh: HeldTunnel = { name: "ssh", type: "tcp", port: 2222, managed: null };
const dns: HeldTunnel = { name: "dns", type: "udp", port: 2222, managed: null };
const web: HeldTunnel = {
  name: "web",
  type: "tcp",
  port: 8000,
  managed: null,
  group: { name: "g" },
};

Deno.test("a port is named to its own user and to an administrator, not to others", () => {
  const held = portHolder([session(bob, "bobs-laptop", [ssh, web])], 2222, "tcp");
  assert(held);
  assertEquals(
    portTakenMessage(2222, "tcp", bob, held),
    'Port 2222 is in use by your tunnel "ssh", which is online (client id "bobs-laptop")',
  );
  assertEquals(
    portTakenMessage(2222, "tcp", root, held),
    `Port 2222 is in use by user "bob"'s tunnel "ssh", which is online (client id "bobs-laptop")`,
  );
  assertEquals(
    portTakenMessage(2222, "tcp", ann, held),
    "Port 2222 is taken by another user's tunnel; choose another port",
  );
  const group = portHolder([session(bob, "b", [web])], 8000, "tcp");
  assertEquals(
    portTakenMessage(8000, "tcp", bob, group),
    'Port 8000 is in use by your tunnel "web" (group "g"), which is online (client id "b")',
  );
});

Deno.test("TCP and UDP ports are separate; nothing known holds it: another program", () => {
  const sessions = [session(ann, "a", [dns])];
  assertEquals(portHolder(sessions, 2222, "tcp"), null);
  assertEquals(portHolder(sessions, 2222, "udp")?.tunnel.name, "dns");
  assertEquals(
    portTakenMessage(2222, "tcp", ann, null),
    "Port 2222 is in use on the server by another program; choose another port",
  );
  assertEquals(
    portTakenMessage(5353, "udp", ann, null),
    "UDP port 5353 is in use on the server by another program; choose another port",
  );
});

Deno.test("burrowd's own ports are named as such, before any tunnel on them", () => {
  const host = {
    port: 7000,
    sessions: [session(ann, "a", [{ name: "site", type: "http", port: 8080, managed: null }])],
    vhosts: { http: { port: 8080 }, https: null },
    config: { admin: { bind_port: 7500 } },
  };
  assertEquals(
    portHeld(host, ann, 7000, "tcp"),
    "Port 7000 is burrowd's own control port (server.bind_port); choose another port",
  );
  assertEquals(
    portHeld(host, ann, 8080, "tcp"),
    "Port 8080 is burrowd's own HTTP port (server.vhost_http_port); choose another port",
  );
  assertEquals(
    portHeld(host, ann, 7500, "tcp"),
    "Port 7500 is burrowd's own admin port (server.admin.bind_port); choose another port",
  );
  assertEquals(portHeld(host, ann, 7000, "udp"), null);
  assertEquals(portHeld(host, ann, 2222, "tcp"), null);
});

Deno.test("a name is held by another session of the same user, open or opening", () => {
  const mine = session(ann, "laptop", []);
  const other = session(ann, "desktop", [ssh]);
  const theirs = session(bob, "b", [{ ...ssh, name: "db" }]);
  const managed = session(ann, "m", [{ ...ssh, name: "api", managed: {} }]);
  const none = () => false;
  const all = [mine, other, theirs, managed];
  assertEquals(nameHolder(all, mine, "ssh", none), other);
  assertEquals(nameHolder(all, other, "ssh", none), null, "its own tunnel is not a twin");
  assertEquals(nameHolder(all, mine, "db", none), null, "another user's names are theirs");
  assertEquals(nameHolder(all, mine, "api", none), null, "a managed tunnel is the DAO's to refuse");
  assertEquals(nameHolder(all, mine, "new", (s, n) => s === theirs && n === "new"), null);
  assertEquals(nameHolder(all, mine, "new", (s, n) => s === other && n === "new"), other);
  assertEquals(
    nameTakenMessage("ssh", other),
    'Tunnel "ssh" is already online from another client of user "ann" (client id "desktop", ' +
      "address 192.0.2.7:40000); stop that client, or give this tunnel another name " +
      "(burrow --name, or tunnels[].name in the client config)",
  );
});
