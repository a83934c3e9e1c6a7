import { assert, assertEquals } from "../testing/mod.ts";
import { Secret } from "../util/mod.ts";
import { clientCommand, connectHint, publicHost, startBanner } from "./connect_hint.ts";

const FP = "sha256:" + "ab".repeat(32);

function config(over: { bind_addr?: string; subdomain_host?: string; token?: string } = {}) {
  return {
    bind_addr: over.bind_addr ?? "0.0.0.0",
    ...(over.subdomain_host ? { subdomain_host: over.subdomain_host } : {}),
    auth: { method: "token" as const, ...(over.token ? { token: new Secret(over.token) } : {}) },
    storage: { data_dir: "/var/lib/burrow" },
  } as Parameters<typeof connectHint>[0];
}

Deno.test("publicHost: the bound address, else the public name, else the host name", () => {
  assertEquals(publicHost({ bind_addr: "192.0.2.7" }), "192.0.2.7");
  assertEquals(publicHost({ bind_addr: "::1" }), "[::1]");
  assertEquals(
    publicHost({ bind_addr: "0.0.0.0", subdomain_host: "tunnel.example.com" }),
    "tunnel.example.com",
  );
  assertEquals(publicHost({ bind_addr: "::" }), Deno.hostname());
});

Deno.test("clientCommand: the quick-mode command with the pin and the token file", () => {
  const generated = connectHint(config({ subdomain_host: "t.example.com" }), 7000, FP);
  assertEquals(
    clientCommand(generated),
    `burrow tcp LOCAL_PORT --server t.example.com:7000 --fingerprint ${FP} ` +
      "--token-file /var/lib/burrow/token",
  );
  const configured = connectHint(config({ bind_addr: "127.0.0.1", token: "s3cret" }), 7001, FP);
  assertEquals(configured.tokenFile, null);
  assertEquals(
    clientCommand(configured),
    `burrow tcp LOCAL_PORT --server 127.0.0.1:7001 --fingerprint ${FP} --token-file FILE`,
  );
  assertEquals(
    clientCommand({ server: "h:1", fingerprint: FP, tokenFile: "/my data/it's" }),
    `burrow tcp LOCAL_PORT --server h:1 --fingerprint ${FP} --token-file '/my data/it'\\''s'`,
  );
});

Deno.test("startBanner: the token only when it was generated at this start", () => {
  const hint = connectHint(config({ bind_addr: "127.0.0.1" }), 7000, FP);
  const first = startBanner(hint, { version: "1.2.3", listen: "127.0.0.1:7000", newToken: "TOK" });
  assertEquals(first.split("\n"), [
    "",
    "burrowd 1.2.3 is listening on 127.0.0.1:7000",
    "Publish a local port (LOCAL_PORT) from a client machine with:",
    `  burrow tcp LOCAL_PORT --server 127.0.0.1:7000 --fingerprint ${FP} ` +
    "--token-file /var/lib/burrow/token",
    "The client token was generated now and is kept in /var/lib/burrow/token; copy that file to the",
    "client machine. The token is shown here this once and is never logged:",
    "  TOK",
    `In client.yaml, pin this server with: server_fingerprint: "${FP}"`,
    "",
  ]);
  const later = startBanner(hint, { version: "1.2.3", listen: "127.0.0.1:7000" });
  assert(!later.includes("TOK"));
  assert(
    later.includes(
      "The client token is kept in /var/lib/burrow/token; copy that file to the client machine.",
    ),
  );
  const configured = startBanner(
    connectHint(config({ token: "s3cret" }), 7000, FP),
    { version: "1.2.3", listen: "0.0.0.0:7000", newToken: "s3cret" },
  );
  assert(!configured.includes("s3cret"), "a configured token is never shown");
  assert(
    configured.includes("where FILE holds the token set in server.auth.token or BURROW_TOKEN."),
  );
});
