/**
 * A small driver for headless Chromium over the DevTools protocol (CDP), for
 * tests that need a real browser to run a page's script: the inspector's
 * live list, its clicks, its screenshot. It speaks to one page target over
 * the browser's WebSocket (sessions flattened onto it), nothing more.
 *
 * Every wait is bounded and names what it waited for, so that a browser
 * that hangs fails the test with the command it hung on.
 *
 * @example
 * ```ts ignore
 * import { Chromium } from "../testing/mod.ts";
 * await using browser = await Chromium.launch();
 * const page = await browser.newPage({ width: 1280, height: 800 });
 * await page.navigate("http://127.0.0.1:4040/");
 * const title = await page.evaluate<string>("document.title");
 * const png = await page.screenshot();
 * ```
 *
 * @module
 */

import { CHROMIUM_HEADLESS } from "./tools.ts";

/** Options of {@linkcode Chromium.launch}. */
export interface ChromiumOptions {
  /** The executable. Default `chromium`. */
  bin?: string;
  /** Flags after the shared headless ones ({@linkcode CHROMIUM_HEADLESS}). Default none. */
  args?: readonly string[];
  /** Bound on the browser's start, until it listens and is connected, in ms. Default 30 000. */
  launchTimeoutMs?: number;
  /** Bound on each command's reply and each awaited event, in ms. Default 15 000. */
  timeoutMs?: number;
}

/** Options of {@linkcode Chromium.newPage}. */
export interface PageOptions {
  /** Viewport width in CSS pixels (device scale 1). Default 1280. */
  width?: number;
  /** Viewport height in CSS pixels. Default 800. */
  height?: number;
}

/** Options of {@linkcode Chromium.send} and the commands of a {@linkcode Page}. */
export interface SendOptions {
  /** The page session to send to (flattened onto the browser's connection). Default the browser. */
  sessionId?: string;
  /** Bound on the reply, in ms. Default the launch's `timeoutMs`. */
  timeoutMs?: number;
}

/** A CDP error reply, a page exception, or a wait that ran out, naming the command. */
export class CdpError extends Error {
  /** The CDP method the error belongs to (`Runtime.evaluate` …). */
  readonly method: string;

  /** An error about `method`. */
  constructor(method: string, message: string) {
    super(`${method}: ${message}`);
    this.name = "CdpError";
    this.method = method;
  }
}

interface Pending {
  method: string;
  resolve: (result: Record<string, unknown>) => void;
  reject: (error: Error) => void;
}

interface Waiter {
  method: string;
  sessionId: string | undefined;
  resolve: (params: Record<string, unknown>) => void;
}

/** Resolves `promise` or throws a {@linkcode CdpError} naming `method` after `ms`. */
async function bounded<T>(method: string, ms: number, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new CdpError(method, `No answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A headless Chromium started by this process, with a throwaway profile,
 * driven over its DevTools WebSocket. Disposing it closes the browser
 * (killing the PID it started if it does not exit) and removes the profile.
 */
export class Chromium implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #profile: string;
  readonly #timeoutMs: number;
  readonly #stderr: string[] = [];
  readonly #pump: Promise<void>;
  #listening: (url: string) => void = () => {};
  readonly #endpoint = new Promise<string>((resolve) => (this.#listening = resolve));
  #ws: WebSocket | undefined;
  #closed: Promise<void> = Promise.resolve();
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();
  readonly #waiters = new Set<Waiter>();
  #disposed = false;

  /**
   * Starts Chromium (see {@linkcode Chromium.launch}, which also waits until it
   * listens and connects to it).
   */
  constructor(options: ChromiumOptions = {}) {
    this.#timeoutMs = options.timeoutMs ?? 15_000;
    this.#profile = Deno.makeTempDirSync({ prefix: "burrow-chromium-" });
    this.#child = new Deno.Command(options.bin ?? "chromium", {
      args: [
        ...CHROMIUM_HEADLESS,
        "--remote-debugging-port=0",
        `--user-data-dir=${this.#profile}`,
        ...(options.args ?? []),
        "about:blank",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.#pump = this.#follow(this.#child.stderr);
  }

  /** Starts Chromium headless on a DevTools port the system picks, and connects to it. */
  static async launch(options: ChromiumOptions = {}): Promise<Chromium> {
    const browser = new Chromium(options);
    try {
      // The exit is a failure only while waiting for the endpoint; later it is the dispose.
      const exited = browser.#child.status.then((s) => {
        throw new Error(`Chromium exited (code ${s.code}) before listening:\n${browser.log}`);
      });
      exited.catch(() => {});
      const ms = options.launchTimeoutMs ?? 30_000;
      const url = await bounded("launch", ms, Promise.race([browser.#endpoint, exited]));
      await bounded("connect", ms, browser.#connect(url));
      return browser;
    } catch (error) {
      await browser[Symbol.asyncDispose]();
      throw error;
    }
  }

  /**
   * Reads stderr to its end (a full pipe would stall the browser), keeping
   * the last lines for error messages and picking out the endpoint that
   * Chromium prints among its own noise.
   */
  async #follow(stream: ReadableStream<Uint8Array>): Promise<void> {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      let nl;
      while ((nl = rest.indexOf("\n")) >= 0) {
        const line = rest.slice(0, nl);
        rest = rest.slice(nl + 1);
        this.#stderr.push(line);
        if (this.#stderr.length > 20) this.#stderr.shift();
        const match = /^DevTools listening on (ws:\/\/\S+)/.exec(line);
        if (match) this.#listening(match[1]!);
      }
    }
  }

  async #connect(url: string): Promise<void> {
    const ws = new WebSocket(url);
    this.#ws = ws;
    this.#closed = new Promise((resolve) => ws.addEventListener("close", () => resolve()));
    ws.addEventListener("message", (e) => this.#receive(String(e.data)));
    ws.addEventListener("close", () => {
      for (const p of this.#pending.values()) {
        p.reject(new CdpError(p.method, "The browser's connection closed"));
      }
      this.#pending.clear();
    });
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener("open", () => resolve());
      ws.addEventListener("error", () => reject(new Error(`Cannot connect to ${url}`)));
    });
  }

  #receive(data: string): void {
    const message = JSON.parse(data) as {
      id?: number;
      method?: string;
      sessionId?: string;
      result?: Record<string, unknown>;
      error?: { message: string };
      params?: Record<string, unknown>;
    };
    if (message.id !== undefined) {
      const pending = this.#pending.get(message.id);
      if (!pending) return;
      this.#pending.delete(message.id);
      if (message.error) pending.reject(new CdpError(pending.method, message.error.message));
      else pending.resolve(message.result ?? {});
      return;
    }
    for (const waiter of this.#waiters) {
      if (waiter.method === message.method && waiter.sessionId === message.sessionId) {
        this.#waiters.delete(waiter);
        waiter.resolve(message.params ?? {});
      }
    }
  }

  /** Sends one command (to the browser, or to a page's session) and waits for its reply. */
  send(
    method: string,
    params: Record<string, unknown> = {},
    options: SendOptions = {},
  ): Promise<Record<string, unknown>> {
    const { sessionId, timeoutMs = this.#timeoutMs } = options;
    const ws = this.#ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new CdpError(method, "The browser is not connected"));
    }
    const id = this.#nextId++;
    const reply = new Promise<Record<string, unknown>>((resolve, reject) => {
      this.#pending.set(id, { method, resolve, reject });
    });
    ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    return bounded(method, timeoutMs, reply).finally(() => this.#pending.delete(id));
  }

  /** The next event `method` of session `sessionId`; call before the command that causes it. */
  event(method: string, sessionId?: string): Promise<Record<string, unknown>> {
    let waiter: Waiter | undefined;
    const fired = new Promise<Record<string, unknown>>((resolve) => {
      waiter = { method, sessionId, resolve };
      this.#waiters.add(waiter);
    });
    return bounded(method, this.#timeoutMs, fired).finally(() => this.#waiters.delete(waiter!));
  }

  /** Opens a new page (tab) at `about:blank`, attached to this connection, with a fixed viewport. */
  async newPage(options: PageOptions = {}): Promise<Page> {
    const { targetId } = await this.send("Target.createTarget", { url: "about:blank" });
    const { sessionId } = await this.send("Target.attachToTarget", { targetId, flatten: true });
    const page = new Page(this, String(sessionId));
    await page.send("Page.enable");
    await page.send("Runtime.enable");
    await page.send("Emulation.setDeviceMetricsOverride", {
      width: options.width ?? 1280,
      height: options.height ?? 800,
      deviceScaleFactor: 1,
      mobile: false,
    });
    return page;
  }

  /** Closes the browser (the PID this started, killed if it lingers) and removes its profile. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    // Asked first (over CDP, else SIGTERM), so that Chromium ends its own helper processes;
    // killed if it does not exit.
    const asked = this.#ws?.readyState === WebSocket.OPEN &&
      await this.send("Browser.close").then(() => true, () => false);
    if (!asked) {
      try {
        this.#child.kill("SIGTERM");
      } catch { /* exited already */ }
    }
    const exited = await bounded("exit", 5_000, this.#child.status).then(() => true, () => false);
    if (!exited) {
      try {
        this.#child.kill("SIGKILL");
      } catch { /* exited meanwhile */ }
      await this.#child.status;
    }
    if (this.#ws && this.#ws.readyState !== WebSocket.CLOSED) {
      this.#ws.close();
      await bounded("close", 5_000, this.#closed).catch(() => {});
    }
    // Bounded too: a helper process that outlived the browser could hold stderr open.
    await bounded("stderr", 5_000, this.#pump).catch(() => {});
    await Deno.remove(this.#profile, { recursive: true }).catch(() => {});
  }

  /** The throwaway profile directory (`--user-data-dir`), removed on dispose. */
  get profile(): string {
    return this.#profile;
  }

  /** Chromium's last lines on stderr, for a failing test's message. */
  get log(): string {
    return this.#stderr.join("\n");
  }
}

/** One page target of a {@linkcode Chromium}: navigate, evaluate script, screenshot. */
export class Page {
  readonly #browser: Chromium;
  /** The flattened session's id, which each command to this page carries. */
  readonly sessionId: string;

  /** A page attached as `sessionId` (see {@linkcode Chromium.newPage}). */
  constructor(browser: Chromium, sessionId: string) {
    this.#browser = browser;
    this.sessionId = sessionId;
  }

  /** Sends one command to this page and waits for its reply. */
  send(
    method: string,
    params: Record<string, unknown> = {},
    options: Omit<SendOptions, "sessionId"> = {},
  ): Promise<Record<string, unknown>> {
    return this.#browser.send(method, params, { ...options, sessionId: this.sessionId });
  }

  /** Navigates to `url` and waits for its load event; a failed load throws its reason. */
  async navigate(url: string): Promise<void> {
    const loaded = this.#browser.event("Page.loadEventFired", this.sessionId);
    loaded.catch(() => {}); // awaited below, unless the navigation itself fails
    const result = await this.send("Page.navigate", { url });
    if (result.errorText) {
      throw new CdpError("Page.navigate", `${url}: ${result.errorText}`);
    }
    await loaded;
  }

  /**
   * Evaluates `expression` in the page and returns its value (a promise is
   * awaited; the value crosses as JSON). An exception thrown in the page is
   * thrown here with its text.
   */
  async evaluate<T = unknown>(
    expression: string,
    options: Omit<SendOptions, "sessionId"> = {},
  ): Promise<T> {
    const { result, exceptionDetails } = await this.send("Runtime.evaluate", {
      expression,
      returnByValue: true,
      awaitPromise: true,
    }, options) as {
      result?: { value?: unknown };
      exceptionDetails?: { text: string; exception?: { description?: string } };
    };
    if (exceptionDetails) {
      const why = exceptionDetails.exception?.description ?? exceptionDetails.text;
      throw new CdpError("Runtime.evaluate", why);
    }
    return result?.value as T;
  }

  /**
   * Evaluates `expression` every 50 ms until it is truthy and returns that
   * value; after `ms` fails naming `what` and the last value or error.
   */
  async until<T = unknown>(what: string, expression: string, ms = 10_000): Promise<T> {
    const deadline = performance.now() + ms;
    let last: unknown;
    for (;;) {
      try {
        last = await this.evaluate<T>(expression);
        if (last) return last as T;
      } catch (error) {
        last = error;
      }
      if (performance.now() > deadline) {
        const seen = last instanceof Error ? String(last) : JSON.stringify(last);
        throw new Error(`Timed out waiting for ${what} in the page: ${seen}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** A PNG of the viewport. */
  async screenshot(): Promise<Uint8Array> {
    const { data } = await this.send("Page.captureScreenshot", { format: "png" });
    return Uint8Array.fromBase64(String(data));
  }
}
