// The first minutes with burrowd and burrow, as a person sees them: the real
// mains spawned, their exit codes and the exact sentences they print.
// - A first start without a terminal (a service manager, a container) logs
//   one line with the client command, and the token appears nowhere.
// - On a terminal (a pseudo-terminal through `script`) the banner shows the
//   same command, and the token only at the start that generated it.
// - A misspelt top-level key, a wrong token, a taken admin port, --version.

import { resolve } from "node:path";
import { assert, assertEquals, testNeeding } from "../lib/testing/mod.ts";
import {
  echo,
  echoThrough,
  localService,
  Proc,
  runClientCommand,
  runServerCommand,
  startServer,
  tunnelPort,
} from "./_procs.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const VERSION = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).version as string;
/** Ignored (outside CI) when what they need is missing: see lib/testing/tools.ts. */
const test = { script: testNeeding("script") };
/** Set empty so that a BURROW_TOKEN of the test's own environment cannot stand in. */
const NO_ENV_TOKEN = { BURROW_TOKEN: "" };

async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "burrow-start-" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

/** A server config with no token: the first start generates one into `dir/data/token`. */
async function tokenlessConfig(dir: string, log = "{level: info, format: json}"): Promise<string> {
  const path = `${dir}/server.yaml`;
  await Deno.writeTextFile(
    path,
    `server:
  bind_addr: 127.0.0.1
  bind_port: 0
  storage: {data_dir: "${dir}/data"}
  admin: {bind_addr: 127.0.0.1, bind_port: 0}
  log: ${log}
`,
  );
  return path;
}

Deno.test("first start without a terminal: one log line with the client command that works; the token is in no output and no log file", async () => {
  await using dir = await tempDir();
  const config = await tokenlessConfig(
    dir.path,
    `{level: debug, format: json, file: "${dir.path}/burrowd.log"}`,
  );
  const server = new Proc("server", ["--config", config], NO_ENV_TOKEN);
  let client: Proc | undefined;
  try {
    const listening = await server.waitFor((e) => e.msg === "control channel listening", 60_000);
    const hint = await server.waitFor((e) => e.msg === "clients connect with");
    const tokenFile = resolve(`${dir.path}/data/token`);
    assertEquals(
      hint.command,
      `burrow tcp LOCAL_PORT --server 127.0.0.1:${listening.port} ` +
        `--fingerprint ${listening.fingerprint} --token-file ${tokenFile}`,
    );
    assertEquals(hint.token_file, tokenFile);
    const token = (await Deno.readTextFile(tokenFile)).trim();
    assert(token.length >= 40, "a generated token");

    // The command as logged, with a real local port, publishes it.
    await using service = localService(echo);
    const args = String(hint.command).split(" ").slice(1)
      .map((word) => word === "LOCAL_PORT" ? String(service.port) : word);
    client = new Proc("client", [...args, "--log-format", "json"], NO_ENV_TOKEN);
    const port = await tunnelPort(client, `tcp-${service.port}`);
    assertEquals(await echoThrough(port, "first minutes"), "first minutes");

    assertEquals(await client.stop(), 0);
    assertEquals(await server.stop(), 0);
    const everything = [
      ...server.lines,
      await server.stdout,
      await Deno.readTextFile(`${dir.path}/burrowd.log`),
      ...client.lines,
      await client.stdout,
    ].join("\n");
    assert(!everything.includes(token), "the token appears nowhere");
    assert(!everything.includes("is listening on"), "no banner without a terminal");
    assert(server.lines.every((l) => l.startsWith("{")), "JSON lines only:\n" + server.lines);
  } finally {
    await client?.[Symbol.asyncDispose]();
    await server[Symbol.asyncDispose]();
  }
});

/**
 * Runs burrowd on a pseudo-terminal (util-linux `script`) until its banner has
 * been printed, then stops it; resolves to what the terminal showed.
 */
async function onTerminal(args: string[], env: Record<string, string>): Promise<string> {
  const burrowd = Deno.env.get("BURROWD_BIN");
  const argv = burrowd
    ? [burrowd, ...args]
    : [Deno.execPath(), "run", "-A", "--unstable-net", `${ROOT}main_server.ts`, ...args];
  const quoted = argv.map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(" ");
  const child = new Deno.Command("script", {
    args: ["-qfec", quoted, "/dev/null"],
    cwd: ROOT,
    env: { ...env, TERM: "dumb" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const decoder = new TextDecoder();
  let seen = "";
  const reading = (async () => {
    for await (const chunk of child.stdout) seen += decoder.decode(chunk, { stream: true });
  })();
  const deadline = Date.now() + 60_000;
  while (!/server_fingerprint: "sha256:[0-9a-f]+"/.test(seen) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  // Ctrl-C on the terminal: burrowd stops gracefully, and script with it.
  const stdin = child.stdin.getWriter();
  await stdin.write(new Uint8Array([3]));
  await stdin.close();
  const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
  await child.status;
  clearTimeout(timer);
  await reading;
  await child.stderr.cancel();
  return seen.replaceAll("\r\n", "\n");
}

test.script("first start on a terminal: the banner shows the client command, and the token only at the start that generated it", async () => {
  await using dir = await tempDir();
  const config = await tokenlessConfig(dir.path, "{level: warn}");
  const tokenFile = resolve(`${dir.path}/data/token`);

  const first = await onTerminal(["--config", config], NO_ENV_TOKEN);
  const token = (await Deno.readTextFile(tokenFile)).trim();
  const fingerprint = /server_fingerprint: "(sha256:[0-9a-f]+)"/.exec(first)?.[1];
  const port = /is listening on 127\.0\.0\.1:(\d+)/.exec(first)?.[1];
  assert(fingerprint && port, first);
  const command = `burrow tcp LOCAL_PORT --server 127.0.0.1:${port} --fingerprint ${fingerprint} ` +
    `--token-file ${tokenFile}`;
  assert(
    first.includes(
      `burrowd ${VERSION} is listening on 127.0.0.1:${port}\n` +
        "Publish a local port (LOCAL_PORT) from a client machine with:\n" +
        `  ${command}\n` +
        `The client token was generated now and is kept in ${tokenFile}; copy that file to the\n` +
        "client machine. The token is shown here this once and is never logged:\n" +
        `  ${token}\n` +
        `In client.yaml, pin this server with: server_fingerprint: "${fingerprint}"\n`,
    ),
    first,
  );

  const second = await onTerminal(["--config", config], NO_ENV_TOKEN);
  assert(!second.includes(token), "the token is shown only when it is generated:\n" + second);
  assert(
    second.includes(
      `The client token is kept in ${tokenFile}; copy that file to the client machine.\n`,
    ),
    second,
  );
});

Deno.test("a misspelt top-level key gets a did-you-mean", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/server.yaml`, "sever:\n  bind_port: 7000\n");
  const server = await runServerCommand(["--config", `${dir.path}/server.yaml`]);
  assertEquals(server.code, 2);
  assertEquals(
    server.stderr,
    `burrowd: Invalid server config "${dir.path}/server.yaml": ` +
      `sever: unknown top-level key (did you mean "server"?)\n`,
  );

  await Deno.writeTextFile(`${dir.path}/client.yaml`, "clinet:\n  server_addr: example.com\n");
  const client = await runClientCommand(["--config", `${dir.path}/client.yaml`]);
  assertEquals(client.code, 2);
  assertEquals(
    client.stderr,
    `burrow: Invalid client config "${dir.path}/client.yaml":\n` +
      `  clinet: unknown top-level key (did you mean "client"?)\n` +
      `  no "client:" section\n`,
  );
});

Deno.test("a wrong token: the client says authentication failed once, with the reason, and exits 3", async () => {
  await using dir = await tempDir();
  const s = await startServer(dir.path, "the-right-token");
  await using _server = s.proc;
  const client = await runClientCommand(
    [
      "tcp",
      "22",
      "--server",
      `127.0.0.1:${s.port}`,
      "--fingerprint",
      s.fingerprint,
      "--token",
      "not-the-right-token",
    ],
    NO_ENV_TOKEN,
  );
  assertEquals(client.code, 3);
  const said = client.stderr.split("\n").filter((l) => l.startsWith("burrow: "));
  assertEquals(said, [
    "burrow: authentication failed: invalid token (check auth_token / BURROW_TOKEN)",
  ]);
});

Deno.test("a taken admin port: start-up fails naming it, with no stray database error", async () => {
  await using dir = await tempDir();
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (taken.addr as Deno.NetAddr).port;
  const config = `${dir.path}/server.yaml`;
  await Deno.writeTextFile(
    config,
    `server:
  bind_addr: 127.0.0.1
  bind_port: 0
  auth: {token: "admin-port-test"}
  storage: {data_dir: "${dir.path}/data"}
  admin: {bind_addr: 127.0.0.1, bind_port: ${port}}
  log: {level: debug, format: json}
`,
  );
  const out = await runServerCommand(["--config", config]);
  assertEquals(out.code, 1, out.stderr);
  const lines = out.stderr.trimEnd().split("\n");
  assert(
    lines.at(-1)!.startsWith(`burrowd: `) && lines.at(-1)!.includes(`127.0.0.1:${port}`),
    out.stderr,
  );
  assert(!out.stderr.includes("pruning history failed"), out.stderr);
  assert(!out.stderr.includes("PGlite is closing"), out.stderr);
});

Deno.test("--version and -v on both programs", async () => {
  for (const run of [runServerCommand, runClientCommand]) {
    for (const flag of ["--version", "-v", "-V"]) {
      const out = await run([flag]);
      assertEquals([out.code, out.stdout, out.stderr], [0, `${VERSION}\n`, ""], flag);
    }
  }
});
