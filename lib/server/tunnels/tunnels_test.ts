import assert from "node:assert/strict";
import { runTunnelCases, type TunnelCase } from "./_cases.ts";
import { TUNNEL_TYPES } from "./registry.ts";

const group = { group: "conf", group_key: "conf-key" };

const cases: TunnelCase[] = [
  { label: "tcp", request: { protocol: "tcp", local_port: 1 }, visitors: "tcp", graceful: true },
  {
    label: "tcp group",
    request: { protocol: "tcp", local_port: 1, ...group },
    visitors: "tcp",
    graceful: true,
  },
  { label: "udp", request: { protocol: "udp", local_port: 1 }, visitors: "udp", graceful: false },
  {
    label: "udp group",
    request: { protocol: "udp", local_port: 1, ...group },
    visitors: "udp",
    graceful: false,
  },
  {
    label: "http",
    request: { protocol: "http", local_port: 1, custom_domains: ["conf.test"] },
    visitors: "http",
    graceful: true,
  },
  {
    label: "http group",
    request: { protocol: "http", local_port: 1, custom_domains: ["conf.test"], ...group },
    visitors: "http",
    graceful: true,
  },
  {
    label: "https",
    request: { protocol: "https", local_port: 1, custom_domains: ["conf.test"] },
    visitors: "https",
    graceful: true,
  },
  {
    label: "https group",
    request: { protocol: "https", local_port: 1, custom_domains: ["conf.test"], ...group },
    visitors: "https",
    graceful: true,
  },
];

for (const test of cases) runTunnelCases(test);

Deno.test("tunnel conformance: every registered type has its cases, alone and in a group", () => {
  for (const type of TUNNEL_TYPES) {
    const mine = cases.filter((c) => c.request.protocol === type);
    assert.ok(mine.some((c) => c.request.group === undefined), `${type} alone`);
    assert.ok(mine.some((c) => c.request.group !== undefined), `${type} in a group`);
  }
});
