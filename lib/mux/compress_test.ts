import assert from "node:assert/strict";
import { gunzipSync, gzipSync } from "node:zlib";
import { memoryPipe } from "../transport/mod.ts";
import { compressedConn, GzipDecoder, GzipEncoder } from "./compress.ts";
import { Mux } from "./mux.ts";
import { relay, type RelayConn, type RelayResult } from "./relay.ts";
import type { MuxStream } from "./stream.ts";

const encode = (s: string) => new TextEncoder().encode(s);

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let off = 0; off < n; off += 65536) crypto.getRandomValues(out.subarray(off, off + 65536));
  return out;
}

/** About `size` bytes of log-like text: repetitive, as HTML, JSON and logs are. */
function text(size: number): Uint8Array {
  const lines: string[] = [];
  let n = 0;
  for (let i = 0; n < size; i++) {
    const line = `2024-05-01T12:${String(i % 60).padStart(2, "0")}:00Z INFO GET /api/items/${
      i % 977
    } HTTP/1.1 200 ${(i * 7919) % 5000} bytes user=u${i % 13}\n`;
    lines.push(line);
    n += line.length;
  }
  return encode(lines.join("")).subarray(0, size);
}

async function writeAll(conn: RelayConn, data: Uint8Array, chunk = 65536): Promise<void> {
  for (let off = 0; off < data.length; off += chunk) {
    const piece = data.subarray(off, off + chunk);
    for (let done = 0; done < piece.length;) done += await conn.write(piece.subarray(done));
  }
}

async function readAll(conn: RelayConn): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const buf = new Uint8Array(65536);
  for (let n; (n = await conn.read(buf)) !== null;) parts.push(buf.slice(0, n));
  return concat(parts);
}

/** Reads until exactly `n` bytes arrived; fails after `ms` instead of hanging. */
async function readExactly(conn: RelayConn, n: number, ms = 2000): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let got = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Stalled after ${got} of ${n} bytes`)), ms);
  });
  try {
    while (got < n) {
      const r = await Promise.race([conn.read(out.subarray(got)), timeout]);
      if (r === null) throw new Error(`EOF after ${got} of ${n} bytes`);
      got += r;
    }
    return out;
  } finally {
    clearTimeout(timer);
  }
}

/** Copies `from` to `to` like a relay would, counting the (compressed) bytes. */
async function pump(from: RelayConn, to: RelayConn, count: { bytes: number }): Promise<void> {
  const buf = new Uint8Array(16 * 1024);
  for (let n; (n = await from.read(buf)) !== null;) {
    count.bytes += n;
    for (let off = 0; off < n;) off += await to.write(buf.subarray(off, n));
  }
  await to.closeWrite();
}

/**
 * visitor ⇄ compressedConn ⇄ (gzip both ways) ⇄ compressedConn ⇄ service,
 * with an in-memory pipe on each plain side.
 */
function backToBack() {
  const [visitor, near] = memoryPipe();
  const [far, service] = memoryPipe();
  const a = compressedConn(near);
  const b = compressedConn(far);
  const up = { bytes: 0 };
  const down = { bytes: 0 };
  const pumps = Promise.all([pump(a, b, up), pump(b, a, down)]);
  const close = async () => {
    await pumps;
    a.close();
    b.close();
  };
  return { visitor, service, up, down, close };
}

Deno.test("GzipEncoder: every push decodes on its own, and the whole is standard gzip", async () => {
  using encoder = new GzipEncoder();
  const lines = ["first line\n", "second line\n", "first line\n"].map(encode);
  const sent: Uint8Array[] = [];
  for (const [i, line] of lines.entries()) {
    sent.push(await encoder.push(line));
    // What was sent so far decodes to all input so far, with no further bytes.
    using decoder = new GzipDecoder();
    assert.deepEqual(await decoder.push(concat(sent)), concat(lines.slice(0, i + 1)));
  }
  assert.deepEqual(await encoder.push(new Uint8Array(0)), new Uint8Array(0));
  sent.push(await encoder.end());
  assert.deepEqual(new Uint8Array(gunzipSync(concat(sent))), concat(lines));
  await assert.rejects(encoder.push(encode("late")), /GzipEncoder has already ended/);
});

Deno.test("GzipDecoder: decodes standard gzip fed a byte at a time", async () => {
  using decoder = new GzipDecoder();
  const plain = text(5000);
  const gz = gzipSync(plain);
  const out: Uint8Array[] = [];
  for (let i = 0; i < gz.length; i++) out.push(await decoder.push(gz.subarray(i, i + 1)));
  out.push(await decoder.end());
  assert.deepEqual(concat(out), plain);
});

Deno.test("GzipDecoder: corrupt and truncated input give a clear error", async () => {
  {
    using decoder = new GzipDecoder();
    const error = await decoder.push(encode("this is not gzip")).catch((e) => e);
    assert.ok(error instanceof Error);
    assert.equal(error.message, "Compressed stream is corrupt: incorrect header check");
    assert.equal((error.cause as { code?: string }).code, "Z_DATA_ERROR");
    // The decoder stays failed.
    await assert.rejects(decoder.push(gzipSync(encode("x"))), /Compressed stream is corrupt/);
  }
  {
    using decoder = new GzipDecoder();
    const gz = gzipSync(text(10_000));
    const bad = gz.slice();
    for (let i = 100; i < 140; i++) bad[i] = 0xff;
    await assert.rejects(
      (async () => {
        await decoder.push(bad);
        await decoder.end();
      })(),
      /^Error: Compressed stream is corrupt: /,
    );
  }
  {
    using decoder = new GzipDecoder();
    const gz = gzipSync(text(10_000));
    await decoder.push(gz.subarray(0, gz.length - 4)); // trailer cut short
    await assert.rejects(
      decoder.end(),
      /^Error: Compressed stream is corrupt: unexpected end of file$/,
    );
  }
  {
    using decoder = new GzipDecoder();
    await assert.rejects(decoder.end(), /Compressed stream is corrupt: unexpected end of file/);
  }
});

Deno.test("GzipDecoder: a decompression bomb is refused whole and handed out in pieces", async () => {
  const bomb = gzipSync(new Uint8Array(64 << 20)); // about 64 KiB inflating to 64 MiB
  {
    using decoder = new GzipDecoder();
    await assert.rejects(decoder.push(bomb), RangeError);
    await assert.rejects(decoder.push(bomb), /GzipDecoder is closed/);
  }
  {
    using decoder = new GzipDecoder({ maxOutput: 1 << 30 });
    let total = 0;
    let largest = 0;
    for await (const piece of decoder.pushEach(bomb)) {
      total += piece.length;
      largest = Math.max(largest, piece.length);
    }
    assert.equal(total, 64 << 20);
    assert.ok(largest <= 256 * 1024, `largest piece ${largest} bytes`);
    assert.equal((await decoder.end()).length, 0);
  }
});

Deno.test("GzipEncoder/GzipDecoder: overlapping calls and use after close are refused", async () => {
  const encoder = new GzipEncoder();
  const first = encoder.push(text(100_000));
  await assert.rejects(encoder.push(encode("x")), /GzipEncoder is busy/);
  await first;
  encoder.close();
  encoder.close();
  await assert.rejects(encoder.push(encode("x")), /GzipEncoder is closed/);
  const decoder = new GzipDecoder();
  decoder.close();
  await assert.rejects(decoder.end(), /GzipDecoder is closed/);
});

Deno.test("compressedConn back to back: random binary round trips both ways at once", async () => {
  const { visitor, service, up, down, close } = backToBack();
  const request = randomBytes(1 << 20);
  const response = randomBytes(3 << 19);
  const [atService, atVisitor] = await Promise.all([
    readAll(service),
    readAll(visitor),
    (async () => {
      await writeAll(visitor, request, 1000);
      visitor.closeWrite();
    })(),
    (async () => {
      await writeAll(service, response);
      service.closeWrite();
    })(),
  ]);
  await close();
  assert.deepEqual(atService, request);
  assert.deepEqual(atVisitor, response);
  // Incompressible data grows only by the framing: about 10 bytes per flushed
  // write (a stored block header and the sync marker), here one per 1000 bytes.
  const framing = 12 * Math.ceil(request.length / 1000) + 64;
  assert.ok(up.bytes < request.length + framing, `${up.bytes} bytes for ${request.length}`);
  assert.ok(down.bytes < response.length * 1.01, `${down.bytes} bytes for ${response.length}`);
});

Deno.test("compressedConn back to back: 10 MB of text round trips and shrinks", async () => {
  const { visitor, service, up, close } = backToBack();
  const plain = text(10_000_000);
  const [atService] = await Promise.all([
    readAll(service),
    (async () => {
      await writeAll(visitor, plain);
      visitor.closeWrite();
    })(),
  ]);
  service.closeWrite();
  assert.equal((await readAll(visitor)).length, 0);
  await close();
  assert.deepEqual(atService, plain);
  assert.ok(up.bytes < plain.length * 0.3, `${up.bytes} compressed bytes for ${plain.length}`);
});

Deno.test("compressedConn back to back: a 10-byte line arrives alone, without waiting for more", async () => {
  const { visitor, service, up, close } = backToBack();
  const line = encode("uptime -p\n");
  assert.equal(line.length, 10);
  await visitor.write(line);
  assert.deepEqual(await readExactly(service, 10), line);
  // And again: the shared context does not hold later lines back either.
  await service.write(encode("up 3 days\n"));
  assert.deepEqual(await readExactly(visitor, 10), encode("up 3 days\n"));
  await visitor.write(line);
  assert.deepEqual(await readExactly(service, 10), line);
  const repeatCost = up.bytes;
  visitor.closeWrite();
  service.closeWrite();
  await close();
  assert.ok(repeatCost < 60, `${repeatCost} bytes for two lines`);
});

Deno.test("compressedConn back to back: half-close is EOF on the other side, the reply still flows", async () => {
  const { visitor, service, close } = backToBack();
  await visitor.write(encode("request"));
  visitor.closeWrite();
  assert.equal(new TextDecoder().decode(await readAll(service)), "request");
  await service.write(encode("reply"));
  service.closeWrite();
  assert.equal(new TextDecoder().decode(await readAll(visitor)), "reply");
  await close();
});

Deno.test("compressedConn: corrupt and truncated gzip from the stream are errors, not EOF", async () => {
  {
    const [near, plain] = memoryPipe();
    const conn = compressedConn(near);
    await assert.rejects(
      conn.write(encode("plain text, not gzip")),
      /^Error: Compressed stream is corrupt: /,
    );
    conn.close();
    conn.close();
    plain.close();
  }
  {
    const [near, plain] = memoryPipe();
    const conn = compressedConn(near);
    const gz = gzipSync(encode("half of this message is lost"));
    assert.equal(await conn.write(gz.subarray(0, 20)), 20);
    await assert.rejects(
      async () => await conn.closeWrite(),
      /Compressed stream is corrupt: unexpected end of file/,
    );
    conn.close();
    plain.close();
  }
});

Deno.test("compressedConn: a decompression bomb reaches the connection in small writes", async () => {
  let total = 0;
  let largest = 0;
  const sink: RelayConn = {
    read: () => Promise.resolve(null),
    write(p) {
      total += p.length;
      largest = Math.max(largest, p.length);
      return Promise.resolve(p.length);
    },
    closeWrite() {},
    close() {},
  };
  const conn = compressedConn(sink);
  const bomb = gzipSync(new Uint8Array(32 << 20));
  for (let off = 0; off < bomb.length; off += 65536) {
    await conn.write(bomb.subarray(off, off + 65536));
  }
  await conn.closeWrite();
  conn.close();
  assert.equal(total, 32 << 20);
  assert.ok(largest <= 256 * 1024, `largest write ${largest} bytes`);
});

Deno.test("compressedConn on both ends of a mux stream via relay()", async () => {
  const [visitor, visitorNear] = memoryPipe();
  const [serviceNear, service] = memoryPipe();
  const relays: Promise<RelayResult>[] = [];
  const [a, b] = memoryPipe();
  const server = new Mux(a, { role: "server", pingInterval: 0 });
  const client = new Mux(b, {
    role: "client",
    pingInterval: 0,
    onStream: (s: MuxStream) => relays.push(relay(compressedConn(serviceNear), s)),
  });
  try {
    const stream = server.open({ tunnel: "t" });
    relays.push(relay(compressedConn(visitorNear), stream));

    // Interactive: one short line crosses at once.
    const line = encode("PING 12345\n").subarray(0, 10);
    await visitor.write(line);
    assert.deepEqual(await readExactly(service, 10), line);
    await service.write(encode("PONG 12345"));
    assert.deepEqual(await readExactly(visitor, 10), encode("PONG 12345"));

    // Bulk: 10 MB of text one way, random binary back, with half-close.
    const plain = text(10_000_000);
    const binary = randomBytes(1 << 20);
    const [atService, atVisitor] = await Promise.all([
      readAll(service),
      readAll(visitor),
      (async () => {
        await writeAll(visitor, plain);
        visitor.closeWrite();
      })(),
      (async () => {
        await writeAll(service, binary);
        service.closeWrite();
      })(),
    ]);
    assert.deepEqual(atService, plain);
    assert.deepEqual(atVisitor, binary);

    const [up, down] = await Promise.all(relays);
    assert.ok(up && down);
    assert.equal(up.error, undefined);
    assert.equal(down.error, undefined);
    assert.ok(up.sent < (plain.length + 10) * 0.3, `${up.sent} bytes for ${plain.length}`);
    assert.equal(up.sent, down.received);
    assert.equal(down.sent, up.received);
    assert.ok(down.sent < binary.length * 1.01 + 100);
  } finally {
    server.close();
    client.close();
  }
});
