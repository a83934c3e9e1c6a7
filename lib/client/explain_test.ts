import { assertEquals } from "../testing/mod.ts";
import { CertificateError, type PresentedCertificate } from "../transport/mod.ts";
import { explainCertificate, giveUpMessage, notBurrowdMessage } from "./explain.ts";

const FP = "sha256:" + "e4e3".repeat(16);

const generated: PresentedCertificate = {
  fingerprint: FP,
  names: ["burrowd", "localhost", "127.0.0.1", "::1"],
  subject: "CN=burrowd",
  issuer: "CN=burrowd",
  validFrom: new Date("2026-11-30T13:57:13Z"),
  validTo: new Date("2036-11-28T13:57:13Z"),
};

const issued: PresentedCertificate = {
  ...generated,
  names: ["tunnel.example.com"],
  subject: "CN=tunnel.example.com",
  issuer: "CN=Example CA",
};

function refused(problem: CertificateError["problem"], presented?: PresentedCertificate) {
  return new CertificateError("Server certificate rejected: …", { problem, presented });
}

Deno.test("explainCertificate: an untrusted certificate shows its fingerprint and how to pin it", () => {
  assertEquals(
    explainCertificate(refused("untrusted", generated), { host: "127.0.0.1" }),
    `The server's certificate is not trusted. Its fingerprint is ${FP}; if that matches what ` +
      "burrowd printed at start (or `burrowd fingerprint` prints), pass " +
      `--fingerprint ${FP} or set client.server_fingerprint`,
  );
  const byCa = `The server's certificate (${FP}) is not trusted: it was issued by CN=Example CA, ` +
    "which this client does not trust. Pass that CA's certificate with --ca-file or set " +
    "client.tls.ca_file";
  assertEquals(explainCertificate(refused("untrusted", issued), { host: "h" }), byCa);
  assertEquals(
    explainCertificate(refused("untrusted", issued), { host: "h", pinned: FP }),
    `${byCa} (a pinned fingerprint works for self-signed certificates only)`,
  );
});

Deno.test("explainCertificate: a name mismatch, an expired certificate, a changed pin", () => {
  assertEquals(
    explainCertificate(refused("wrong_name", issued), { host: "127.0.0.1", caFile: true }),
    "The server's certificate is for tunnel.example.com, not 127.0.0.1: connect to one of those " +
      "names with --server (or client.server_addr and server_port), or have its certificate " +
      "issued for 127.0.0.1 as well",
  );
  assertEquals(
    explainCertificate(refused("wrong_name", generated), { host: "10.0.0.5", caFile: true }),
    "The server's certificate is for burrowd, localhost, 127.0.0.1, ::1, not 10.0.0.5: connect " +
      "to one of those names with --server (or client.server_addr and server_port), or pin it " +
      `with --fingerprint ${FP} in place of --ca-file (client.server_fingerprint in place of ` +
      "client.tls.ca_file), which does not check names",
  );
  assertEquals(
    explainCertificate(
      refused("expired", { ...issued, validTo: new Date("2026-11-29T10:00:00Z") }),
      { host: "127.0.0.1" },
    ),
    `The server's certificate (${FP}) expired on 2026-11-29T10:00:00Z: renew it on the server ` +
      "(replace server.tls.cert_file and key_file, then send burrowd SIGHUP to reload them), or " +
      "set this machine's clock right if it is wrong",
  );
  assertEquals(
    explainCertificate(refused("pin_mismatch", generated), {
      host: "127.0.0.1",
      pinned: "sha256:" + "00".repeat(32),
    }),
    `The server's certificate (${FP}) does not match the pinned sha256:${"00".repeat(32)}: ` +
      "refusing to connect, as its certificate changed or someone is in between. If burrowd's " +
      "certificate was replaced on purpose, pin the new one in --fingerprint or " +
      "client.server_fingerprint (`burrowd fingerprint` on the server prints it)",
  );
});

Deno.test("notBurrowdMessage and giveUpMessage name the address and the setting to change", () => {
  assertEquals(
    notBurrowdMessage("127.0.0.1:8080", "an HTTP server"),
    "127.0.0.1:8080 answered like an HTTP server, not burrowd. Point --server (or " +
      "client.server_addr and server_port) at burrowd's control port (server.bind_port, 7000 " +
      "by default)",
  );
  assertEquals(
    giveUpMessage("127.0.0.1:7999", 3, "connection refused", true),
    "Giving up after 3 attempts to reach 127.0.0.1:7999: connection refused. Start burrowd " +
      "there, or point --server (or client.server_addr and server_port) at where it runs",
  );
});
