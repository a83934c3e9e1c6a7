// The first ten minutes, from outside: what `burrow` says when it cannot get
// to burrowd. A certificate it does not trust (with the fingerprint burrowd
// printed, and the --fingerprint that then works), one for another name, a
// pin of a certificate a CA issued, an expired one (renewed by SIGHUP, after
// which the client connects); a server address that is an HTTP server, an
// HTTPS server, an SSH server or PostgreSQL (exit 2, or retried when
// `max_retries: 0` is written); a closed port (a warning, then retries at
// debug until stopped, or giving up after `max_retries`).

import { assert, assertEquals, rawTcpServer, within } from "../lib/testing/mod.ts";
import { fingerprintOf, generateSelfSigned } from "../lib/transport/mod.ts";
import { createCa } from "./_pki.ts";
import { freePort, Proc, startServer, tunnelPort } from "./_procs.ts";

const TOKEN = "first-minutes-conn-token";

/** Where `--server` points at: burrowd's control port, or anything else. */
const POINT = "Point --server (or client.server_addr and server_port) at burrowd's control port " +
  "(server.bind_port, 7000 by default)";

/** Runs `burrow tcp 9 --server 127.0.0.1:PORT …flags` to its end; its exit code and stderr. */
async function quickRun(
  port: number,
  flags: string[] = [],
): Promise<{ code: number; err: string }> {
  await using proc = quick(port, flags);
  const status = await within(proc.status, 60_000, "burrow to exit");
  await proc.stop();
  return { code: status.code, err: proc.lines.join("\n") };
}

/** Starts `burrow tcp LOCAL --server 127.0.0.1:PORT …flags` (JSON logs on stderr). */
function quick(port: number, flags: string[] = [], local = 9): Proc {
  return new Proc("client", [
    "tcp",
    String(local),
    "--server",
    `127.0.0.1:${port}`,
    "--log-format",
    "json",
    ...flags,
  ], { BURROW_TOKEN: TOKEN, BURROW_NO_STATUS_LINE: "1" });
}

/** The one line of `err` that starts with `burrow: ` (what a person reads), without it. */
function said(err: string): string {
  const lines = err.split("\n").filter((l) => l.startsWith("burrow: "));
  assertEquals(lines.length, 1, err);
  return lines[0]!.slice("burrow: ".length);
}

/** An HTTP server (`Deno.serve`) on 127.0.0.1, with TLS when `tls` is given. */
function httpServer(tls?: { cert: string; key: string }) {
  const controller = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: controller.signal, onListen() {}, ...tls },
    () => new Response("not burrowd\n"),
  );
  return {
    port: server.addr.port,
    async [Symbol.asyncDispose]() {
      controller.abort();
      await server.finished;
    },
  };
}

Deno.test("a self-signed burrowd without --fingerprint: the fingerprint it printed, and the flag that works", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-first-conn-" });
  try {
    const server = await startServer(dir, TOKEN);
    await using _server = server.proc;
    const { code, err } = await quickRun(server.port);
    assertEquals(code, 1, err);
    assertEquals(
      said(err),
      `The server's certificate is not trusted. Its fingerprint is ${server.fingerprint}; if that ` +
        "matches what burrowd printed at start (or `burrowd fingerprint` prints), pass " +
        `--fingerprint ${server.fingerprint} or set client.server_fingerprint`,
    );
    // Doing what it says connects.
    const shown = /--fingerprint (sha256:[0-9a-f]{64})/.exec(said(err))![1]!;
    await using pinned = quick(server.port, ["--fingerprint", shown]);
    await tunnelPort(pinned, "tcp-9");
    assertEquals(await pinned.stop("SIGTERM"), 0);
    assert((await pinned.stdout).includes("Forwarding  tcp://127.0.0.1:"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a certificate for another name, and an expired one until burrowd reloads a new one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-first-conn-" });
  try {
    const ca = await createCa("First Minutes CA");
    await Deno.writeTextFile(`${dir}/ca.crt`, ca.cert);
    const install = async (cert: { cert: string; key: string }) => {
      await Deno.writeTextFile(`${dir}/server.crt`, cert.cert);
      await Deno.writeTextFile(`${dir}/server.key`, cert.key);
      return fingerprintOf(cert.cert);
    };
    const named = await install(await ca.issueServer(["tunnel.example.test"]));
    const server = await startServer(
      dir,
      TOKEN,
      0,
      `  tls: {cert_file: "${dir}/server.crt", key_file: "${dir}/server.key"}`,
    );
    await using _server = server.proc;
    const caFile = ["--ca-file", `${dir}/ca.crt`];

    const wrongName = await quickRun(server.port, caFile);
    assertEquals(wrongName.code, 1, wrongName.err);
    assertEquals(
      said(wrongName.err),
      "The server's certificate is for tunnel.example.test, not 127.0.0.1: connect to one of " +
        "those names with --server (or client.server_addr and server_port), or have its " +
        "certificate issued for 127.0.0.1 as well",
    );
    // Pinning works for self-signed certificates only, and says so.
    const pinned = await quickRun(server.port, ["--fingerprint", named]);
    assertEquals(pinned.code, 1, pinned.err);
    assertEquals(
      said(pinned.err),
      `The server's certificate (${named}) is not trusted: it was issued by CN=First Minutes CA, ` +
        "which this client does not trust. Pass that CA's certificate with --ca-file or set " +
        "client.tls.ca_file (a pinned fingerprint works for self-signed certificates only)",
    );

    const day = 86_400_000;
    const expiredOn = new Date(Math.floor(Date.now() / 1000) * 1000 - day);
    const expired = await install(
      await ca.issueServer(["127.0.0.1"], {
        notBefore: new Date(expiredOn.getTime() - 30 * day),
        notAfter: expiredOn,
      }),
    );
    const mark = server.proc.events.length;
    server.proc.child.kill("SIGHUP");
    await server.proc.waitFor((e) => e.msg === "certificate reloaded", 10_000, mark);
    const old = await quickRun(server.port, caFile);
    assertEquals(old.code, 1, old.err);
    assertEquals(
      said(old.err),
      `The server's certificate (${expired}) expired on ${
        expiredOn.toISOString().replace(".000Z", "Z")
      }: renew it on the server (replace server.tls.cert_file and key_file, then send burrowd ` +
        "SIGHUP to reload them), or set this machine's clock right if it is wrong",
    );
    // Doing what it says (a new certificate, SIGHUP) lets the same command connect.
    await install(await ca.issueServer(["127.0.0.1"]));
    const again = server.proc.events.length;
    server.proc.child.kill("SIGHUP");
    await server.proc.waitFor((e) => e.msg === "certificate reloaded", 10_000, again);
    await using renewed = quick(server.port, caFile);
    await tunnelPort(renewed, "tcp-9");
    assertEquals(await renewed.stop("SIGTERM"), 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an HTTP server, an SSH server and an HTTPS server are named, with exit code 2", async () => {
  await using http = httpServer();
  await using ssh = rawTcpServer(async (conn) => {
    await conn.write(new TextEncoder().encode("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"));
    await conn.read(new Uint8Array(1024));
  });
  const cert = await generateSelfSigned([]);
  await using https = httpServer(cert);
  const cases: Array<[number, string[], string]> = [
    [http.port, [], "an HTTP server"],
    [ssh.port, [], "an SSH server"],
    // TLS completes (pinned), then the Burrow hello is answered in HTTP.
    [https.port, ["--fingerprint", fingerprintOf(cert.cert)], "an HTTPS server"],
  ];
  const runs = await Promise.all(cases.map(([port, flags]) => quickRun(port, flags)));
  cases.forEach(([port, , looksLike], i) => {
    const { code, err } = runs[i]!;
    assertEquals(code, 2, err);
    assertEquals(said(err), `127.0.0.1:${port} answered like ${looksLike}, not burrowd. ${POINT}`);
  });
});

/** Whether a PostgreSQL listens on 127.0.0.1:5432 (the end-to-end tests' database). */
async function postgresListening(): Promise<boolean> {
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port: 5432 })).close();
    return true;
  } catch {
    return false;
  }
}

Deno.test({
  name: "a PostgreSQL port is named, with exit code 2",
  ignore: !(await postgresListening()),
  async fn() {
    const { code, err } = await quickRun(5432);
    assertEquals(code, 2, err);
    assertEquals(
      said(err),
      `127.0.0.1:5432 answered like a PostgreSQL server, not burrowd. ${POINT}`,
    );
  },
});

Deno.test("with max_retries: 0 written, an address that is not burrowd is retried, at error level", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-first-conn-" });
  try {
    await using http = httpServer();
    await Deno.writeTextFile(
      `${dir}/client.yaml`,
      `client:
  server_addr: 127.0.0.1
  server_port: ${http.port}
  auth_token: "${TOKEN}"
  reconnect: {max_retries: 0, initial_delay: 100ms, max_delay: 200ms}
  log: {level: info, format: json}
  tunnels: [{name: t, type: tcp, local_port: 9}]
`,
    );
    await using client = new Proc("client", ["--config", `${dir}/client.yaml`]);
    const retry = await client.waitFor((e) => e.msg === "reconnecting");
    assertEquals(retry.level, "error");
    assertEquals(
      retry.error,
      `127.0.0.1:${http.port} answered like an HTTP server, not burrowd. ${POINT}`,
    );
    assertEquals(await client.stop("SIGTERM"), 0, "still running, stopped by the signal");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a closed port: a warning, the same failure again at debug, until stopped or max_retries", async () => {
  const port = freePort();
  await using waiting = quick(port, ["--log-level", "debug"]);
  const first = await waiting.waitFor((e) => e.msg === "reconnecting");
  assertEquals([first.level, first.error, first.server], [
    "warn",
    "connection refused",
    `127.0.0.1:${port}`,
  ]);
  const second = await waiting.waitFor((e) => e.msg === "reconnecting" && e.attempt === 2);
  assertEquals(second.level, "debug");
  assertEquals(await waiting.stop("SIGTERM"), 0, "still retrying, stopped by the signal");

  const dir = await Deno.makeTempDir({ prefix: "burrow-first-conn-" });
  try {
    await Deno.writeTextFile(
      `${dir}/client.yaml`,
      `client:
  server_addr: 127.0.0.1
  server_port: ${port}
  auth_token: "${TOKEN}"
  reconnect: {max_retries: 2, initial_delay: 100ms, max_delay: 200ms}
  log: {level: info, format: json}
  tunnels: [{name: t, type: tcp, local_port: 9}]
`,
    );
    await using limited = new Proc("client", ["--config", `${dir}/client.yaml`]);
    const status = await within(limited.status, 30_000, "burrow to give up");
    await limited.stop();
    assertEquals(status.code, 1);
    assertEquals(
      said(limited.lines.join("\n")),
      `Giving up after 2 attempts to reach 127.0.0.1:${port}: connection refused. Start ` +
        "burrowd there, or point --server (or client.server_addr and server_port) at where it runs",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
