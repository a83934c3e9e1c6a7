/**
 * `compression: gzip` on a TCP tunnel: interactive traffic is answered at
 * once (every write is flushed), bulk text shrinks on the tunnel.
 */

import { assert, assertEquals } from "../lib/testing/mod.ts";
import { echo, localService, startClient, startServer, tunnelPort, writeAll } from "./_procs.ts";

const TOKEN = "compression-token";

Deno.test("gzip tunnel: line-by-line echo answers each line at once; bulk text shrinks", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-gzip-" });
  await using service = localService(echo);
  const server = await startServer(
    dir,
    TOKEN,
    0,
    `  log: {level: info, format: json, access_file: "${dir}/access.log"}\n`,
  );
  await using _server = server.proc;
  await using client = await startClient(dir, {
    ...server,
    token: TOKEN,
    tunnels: [{ name: "z", local_port: service.port, yaml: "compression: gzip" }],
  });
  const port = await tunnelPort(client, "z");
  const enc = new TextEncoder();
  const dec = new TextDecoder();

  // Interactive: each line must come back before the next is written.
  {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const buf = new Uint8Array(256);
    for (let i = 0; i < 20; i++) {
      const line = `line ${i}\n`;
      await conn.write(enc.encode(line));
      let got = "";
      const deadline = setTimeout(() => conn.close(), 3_000);
      while (got.length < line.length) {
        const n = await conn.read(buf);
        if (n === null) break;
        got += dec.decode(buf.subarray(0, n));
      }
      clearTimeout(deadline);
      assertEquals(got, line, `line ${i} answered without waiting for more input`);
    }
    conn.close();
  }

  // Bulk: 8 MiB of log-like text, echoed back whole.
  const text = Array.from(
    { length: 100_000 },
    (_, i) => `2026-11-25T12:00:${String(i % 60).padStart(2, "0")}Z INFO request ${i} ok\n`,
  ).join("");
  const bulk = enc.encode(text).subarray(0, 8 << 20);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const writing = (async () => {
    // write() may take less than it is given: writeAll loops until every byte is out.
    await writeAll(conn, bulk);
    await conn.closeWrite();
  })();
  const back = new Uint8Array(bulk.length);
  let got = 0;
  for (;;) {
    const n = await conn.read(back.subarray(got));
    if (n === null || got + n >= bulk.length) {
      got += n ?? 0;
      break;
    }
    got += n;
  }
  await writing;
  conn.close();
  assertEquals(got, bulk.length);
  assert(back.every((b, i) => b === bulk[i]), "echoed bytes are identical");

  // The access log counts the tunnel's (compressed) bytes.
  let line: { bytes_in: number; bytes_out: number } | undefined;
  for (let i = 0; i < 50 && !line; i++) {
    const log = await Deno.readTextFile(`${dir}/access.log`).catch(() => "");
    line = log.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l))
      .find((e) => e.bytes_in > 1_000_000 || (e.bytes_out > 100_000 && e.bytes_in > 100_000));
    if (!line) await new Promise((r) => setTimeout(r, 100));
  }
  assert(line, "access line of the bulk connection");
  const ratio = line!.bytes_in / bulk.length;
  console.log(
    `8 MiB of text crossed the tunnel as ${line!.bytes_in} bytes up, ${line!.bytes_out} down ` +
      `(${(ratio * 100).toFixed(1)}%)`,
  );
  assert(ratio < 0.3, `compressed to ${(ratio * 100).toFixed(1)}%`);
  await Deno.remove(dir, { recursive: true });
});
