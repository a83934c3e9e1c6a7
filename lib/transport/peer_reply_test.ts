import { assertEquals } from "../testing/mod.ts";
import { classifyReply } from "./peer_reply.ts";

const text = (s: string) => new TextEncoder().encode(s);

/** A PostgreSQL ErrorResponse as a server sends it. */
function postgresError(message: string): Uint8Array {
  const fields = text(`SFATAL\0C08P01\0M${message}\0\0`);
  const out = new Uint8Array(5 + fields.length);
  out[0] = 0x45;
  new DataView(out.buffer).setUint32(1, 4 + fields.length);
  out.set(fields, 5);
  return out;
}

Deno.test("classifyReply: what answers a ClientHello over plain TCP", () => {
  assertEquals(classifyReply(text("HTTP/1.1 400 Bad Request\r\n\r\n"), "tls"), "an HTTP server");
  assertEquals(classifyReply(text("SSH-2.0-OpenSSH_9.2p1 Debian\r\n"), "tls"), "an SSH server");
  assertEquals(
    classifyReply(postgresError("invalid length of startup packet"), "tls"),
    "a PostgreSQL server",
  );
  assertEquals(
    classifyReply(text("220 mail.example.com ESMTP Postfix\r\n"), "tls"),
    'a server of a text protocol (it said "220 mail.example.com ESMTP Postfix")',
  );
  assertEquals(
    classifyReply(Uint8Array.of(0xff, 0x00, 0x01, 0x02), "tls"),
    "a server that does not speak TLS (it sent 0xff000102)",
  );
});

Deno.test("classifyReply: nothing, or a TLS record, says nothing against burrowd", () => {
  assertEquals(classifyReply(new Uint8Array(), "tls"), null);
  assertEquals(classifyReply(Uint8Array.of(0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46), "tls"), null);
  assertEquals(classifyReply(Uint8Array.of(0x16, 0x03, 0x03, 0x00, 0x7a, 0x02), "tls"), null);
  assertEquals(classifyReply(text("BURW\x01\0\0\0\x10"), "burrow"), null);
  assertEquals(classifyReply(new Uint8Array(), "postgres"), null);
});

Deno.test("classifyReply: only PostgreSQL answers its SSLRequest with S, N or an error", () => {
  assertEquals(classifyReply(text("N"), "postgres"), "a PostgreSQL server");
  assertEquals(classifyReply(text("S"), "postgres"), "a PostgreSQL server");
  assertEquals(classifyReply(postgresError("unsupported"), "postgres"), "a PostgreSQL server");
  assertEquals(classifyReply(text("No"), "postgres"), null);
  assertEquals(classifyReply(text("HTTP/1.1 400 Bad Request\r\n"), "postgres"), null);
});

Deno.test("classifyReply: what answers the Burrow hello over a TLS connection that completed", () => {
  assertEquals(
    classifyReply(text("HTTP/1.1 400 Bad Request\r\n\r\n"), "burrow"),
    "an HTTPS server",
  );
  assertEquals(
    classifyReply(Uint8Array.of(0x00, 0x00, 0x12, 0x04, 0x00), "burrow"),
    "a TLS server that does not speak the Burrow protocol (it sent 0x0000120400)",
  );
});
