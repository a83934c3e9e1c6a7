/**
 * A throwaway ACME CA for tests: Debian's `pebble` on 127.0.0.1, resolving
 * every name to 127.0.0.1 through `pebble-challtestsrv`'s mock DNS server,
 * with its HTTPS endpoint served from a certificate made here.
 *
 * @example
 * ```ts ignore
 * import { startPebble } from "./_pebble.ts";
 * await using pebble = await startPebble({ httpPort: 8080 });
 * console.log(pebble.directoryUrl, await pebble.issuerRoot());
 * ```
 */

import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { freePort } from "./_procs.ts";

const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
const decoder = new TextDecoder();

/** Options of {@linkcode startPebble}. */
export interface PebbleOptions {
  /** Port on 127.0.0.1 where pebble connects to validate HTTP-01 challenges. */
  httpPort: number;
  /** How long to wait for both processes to be ready. Default 15 s. */
  timeoutMs?: number;
}

/** A running pebble, stopped (with its DNS server) by disposal. */
export interface Pebble extends AsyncDisposable {
  /** The ACME directory, e.g. `https://127.0.0.1:40123/dir`. */
  directoryUrl: string;
  /** PEM of the CA that signs pebble's own HTTPS certificate. */
  caBundle: string;
  /** PEM of the root that pebble's issued certificates chain to (`/roots/0`). */
  issuerRoot(): Promise<string>;
  /** Everything both processes printed so far (for failure messages). */
  output(): string;
}

/**
 * Starts pebble and its DNS server on free loopback ports and resolves once
 * pebble serves its directory.
 *
 * @example
 * ```ts ignore
 * await using pebble = await startPebble({ httpPort: server.addr.port });
 * const certs = new CertManager({
 *   dataDir,
 *   directoryUrl: pebble.directoryUrl,
 *   caBundle: pebble.caBundle,
 *   logger,
 * });
 * ```
 */
export async function startPebble(options: PebbleOptions): Promise<Pebble> {
  const timeoutMs = options.timeoutMs ?? 15_000;
  const dir = await Deno.makeTempDir({ prefix: "burrow-pebble-" });
  try {
    const tls = await serverCertificate();
    await Deno.writeTextFile(`${dir}/cert.pem`, tls.cert);
    await Deno.writeTextFile(`${dir}/key.pem`, tls.key, { mode: 0o600 });
    // A port found free can be taken by someone else before pebble binds it:
    // start again on new ports a couple of times before giving up.
    let failures = "";
    for (let attempt = 1; attempt <= 3; attempt++) {
      try {
        const { procs, acmePort, managementPort } = await launch(
          dir,
          options.httpPort,
          timeoutMs,
        );
        return {
          directoryUrl: `https://127.0.0.1:${acmePort}/dir`,
          caBundle: tls.caCert,
          issuerRoot: () => fetchRoot(managementPort, tls.caCert),
          output: () => procs.map((p) => p.text()).join(""),
          async [Symbol.asyncDispose]() {
            await Promise.all(procs.map((p) => p.stop()));
            await Deno.remove(dir, { recursive: true }).catch(() => {});
          },
        };
      } catch (error) {
        failures += `attempt ${attempt}: ${(error as Error).message}\n`;
      }
    }
    throw new Error(`Pebble did not start:\n${failures}`);
  } catch (error) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw error;
  }
}

/** Starts the DNS server and pebble on fresh ports; stops both when either fails. */
async function launch(
  dir: string,
  httpPort: number,
  timeoutMs: number,
): Promise<{ procs: Follower[]; acmePort: number; managementPort: number }> {
  const procs: Follower[] = [];
  try {
    const dnsPort = freePort();
    const dns = new Follower("pebble-challtestsrv", [
      "-defaultIPv4",
      "127.0.0.1",
      "-defaultIPv6",
      "",
      "-dns01",
      `127.0.0.1:${dnsPort}`,
      "-management",
      `127.0.0.1:${freePort()}`,
      "-http01",
      "",
      "-https01",
      "",
      "-tlsalpn01",
      "",
    ], {});
    procs.push(dns);
    await dns.waitForLine(/Starting challenge servers/, timeoutMs);
    await waitForTcp(dnsPort, timeoutMs, dns);

    const acmePort = freePort();
    const managementPort = freePort();
    await Deno.writeTextFile(
      `${dir}/pebble.json`,
      JSON.stringify({
        pebble: {
          listenAddress: `127.0.0.1:${acmePort}`,
          managementListenAddress: `127.0.0.1:${managementPort}`,
          certificate: `${dir}/cert.pem`,
          privateKey: `${dir}/key.pem`,
          httpPort,
          tlsPort: freePort(),
          ocspResponderURL: "",
          externalAccountBindingRequired: false,
        },
      }),
    );
    const pebble = new Follower(
      "pebble",
      ["-config", `${dir}/pebble.json`, "-dnsserver", `127.0.0.1:${dnsPort}`],
      {
        PEBBLE_VA_NOSLEEP: "1",
        PEBBLE_WFE_NONCEREJECT: "0",
        // Validate challenges anew for (nearly: pebble 2.4 still reuses now
        // and then) every order instead of reusing half of the authorizations.
        PEBBLE_AUTHZREUSE: "0",
      },
    );
    procs.push(pebble);
    // The log line comes before the listeners are bound: wait for both.
    await pebble.waitForLine(/ACME directory available at/, timeoutMs);
    await waitForTcp(acmePort, timeoutMs, pebble);
    await waitForTcp(managementPort, timeoutMs, pebble);
    return { procs, acmePort, managementPort };
  } catch (error) {
    const output = procs.map((p) => p.text()).join("");
    await Promise.all(procs.map((p) => p.stop()));
    throw new Error(`${(error as Error).message}\n${output}`, { cause: error });
  }
}

/** Pebble's root certificate from its management interface. */
async function fetchRoot(managementPort: number, caCert: string): Promise<string> {
  const client = Deno.createHttpClient({ caCerts: [caCert] });
  try {
    const response = await fetch(`https://127.0.0.1:${managementPort}/roots/0`, {
      client,
      signal: AbortSignal.timeout(10_000),
    });
    const body = await response.text();
    if (!response.ok) throw new Error(`Pebble /roots/0 answered ${response.status}: ${body}`);
    return body;
  } finally {
    client.close();
  }
}

/** A spawned tool whose stdout and stderr are collected. */
class Follower {
  readonly #name: string;
  readonly #child: Deno.ChildProcess;
  readonly #pumps: Promise<unknown>;
  #text = "";
  #exited = false;
  #waiters = new Set<() => void>();

  constructor(cmd: string, args: string[], env: Record<string, string>) {
    this.#name = cmd;
    this.#child = new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).spawn();
    this.#child.status.then(() => {
      this.#exited = true;
      this.#wake();
    });
    this.#pumps = Promise.all([this.#pump(this.#child.stdout), this.#pump(this.#child.stderr)]);
  }

  async #pump(stream: ReadableStream<Uint8Array>): Promise<void> {
    for await (const chunk of stream) {
      this.#text += decoder.decode(chunk, { stream: true });
      this.#wake();
    }
  }

  #wake(): void {
    for (const wake of this.#waiters) wake();
  }

  text(): string {
    return this.#text;
  }

  /** Resolves when the output matches `pattern`; fails on exit or after `timeoutMs`. */
  async waitForLine(pattern: RegExp, timeoutMs: number): Promise<void> {
    let wake!: () => void;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        wake = () => {
          if (pattern.test(this.#text)) resolve();
          else if (this.#exited) reject(new Error(`"${this.#name}" exited`));
        };
        timer = setTimeout(
          () => reject(new Error(`"${this.#name}" not ready after ${timeoutMs} ms`)),
          timeoutMs,
        );
        this.#waiters.add(wake);
        wake();
      });
    } finally {
      clearTimeout(timer);
      this.#waiters.delete(wake);
    }
  }

  /** The command. */
  get name(): string {
    return this.#name;
  }

  /** Whether the process has exited. */
  get exited(): boolean {
    return this.#exited;
  }

  /** SIGTERM, then SIGKILL after 5 s; waits for the exit and the output. */
  async stop(): Promise<void> {
    if (!this.#exited) {
      try {
        this.#child.kill("SIGTERM");
      } catch { /* exited meanwhile */ }
    }
    const timer = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch { /* exited */ }
    }, 5_000);
    await this.#child.status;
    clearTimeout(timer);
    await this.#pumps;
  }
}

/** Waits until something accepts TCP connections on 127.0.0.1:`port`. */
async function waitForTcp(port: number, timeoutMs: number, proc: Follower): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return;
    } catch (error) {
      if (proc.exited) throw new Error(`"${proc.name}" exited before listening on ${port}`);
      if (Date.now() > deadline) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A CA and a certificate for 127.0.0.1/localhost signed by it. */
async function serverCertificate(): Promise<{ caCert: string; cert: string; key: string }> {
  const now = Date.now();
  const validity = { notBefore: new Date(now - 3_600_000), notAfter: new Date(now + 86_400_000) };
  const caKeys = await crypto.subtle.generateKey(ALG, true, ["sign", "verify"]) as CryptoKeyPair;
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: "CN=Burrow test pebble CA",
    ...validity,
    signingAlgorithm: ALG,
    keys: caKeys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
    ],
  });
  const keys = await crypto.subtle.generateKey(ALG, true, ["sign", "verify"]) as CryptoKeyPair;
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: "CN=localhost",
    issuer: ca.subject,
    ...validity,
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey: caKeys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        { type: "ip", value: "127.0.0.1" },
        { type: "dns", value: "localhost" },
      ]),
    ],
  });
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", keys.privateKey);
  return {
    caCert: ca.toString("pem") + "\n",
    cert: leaf.toString("pem") + "\n",
    key: x509.PemConverter.encode(pkcs8, "PRIVATE KEY") + "\n",
  };
}

function serial(): string {
  const s = crypto.getRandomValues(new Uint8Array(16));
  s[0]! &= 0x7f;
  return [...s].map((b) => b.toString(16).padStart(2, "0")).join("");
}
