import { assertEquals } from "../testing/mod.ts";
import {
  certificateProblem,
  closedDuringHandshake,
  notTlsAnswer,
  unreachableReason,
} from "./dial_errors.ts";

/** A node-style error with a `code`. */
function nodeError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

Deno.test("certificateProblem reads rustls's refusals as Deno reports them", () => {
  const cases: Array<[string, ReturnType<typeof certificateProblem>]> = [
    ["invalid peer certificate: UnknownIssuer", "untrusted"],
    [
      'invalid peer certificate: certificate not valid for name "127.0.0.1"; certificate is only ' +
      'valid for DnsName("burrow.test")',
      "wrong_name",
    ],
    [
      "invalid peer certificate: certificate expired: verification time 1796133385 (UNIX), but " +
      "certificate is not valid after 1796046985 (86400 seconds ago)",
      "expired",
    ],
    [
      "invalid peer certificate: certificate not valid yet: verification time 1796133385 (UNIX), " +
      "but certificate is not valid before 1796219785 (86400 seconds in future)",
      "not_yet_valid",
    ],
    ["received fatal alert: CertificateRequired", "client_certificate"],
    ["received fatal alert: BadCertificate", "client_certificate"],
    ["invalid peer certificate: BadSignature", "other"],
    ["received corrupt message of type InvalidContentType", null],
    ["received fatal alert: HandshakeFailure", null],
  ];
  for (const [message, problem] of cases) {
    assertEquals(certificateProblem(message), problem, message);
  }
});

Deno.test("unreachableReason: a connect nothing answered, from Deno's or node's error", () => {
  const cases: Array<[unknown, string | null]> = [
    [new Deno.errors.ConnectionRefused("Connection refused (os error 111)"), "connection refused"],
    [nodeError("ECONNREFUSED", "connect ECONNREFUSED 127.0.0.1:7999"), "connection refused"],
    [nodeError("EHOSTUNREACH", "connect EHOSTUNREACH 10.9.9.9:7000"), "no route to host"],
    [new Error("No route to host (os error 113)"), "no route to host"],
    [new Deno.errors.NetworkUnreachable("Network is unreachable"), "network unreachable"],
    [
      new Error("failed to lookup address information: Name or service not known"),
      'cannot resolve "h.invalid"',
    ],
    [nodeError("ENOTFOUND", "getaddrinfo ENOTFOUND h.invalid"), 'cannot resolve "h.invalid"'],
    [
      new Error("Connecting to h.invalid:7000 timed out after 10000 ms"),
      "no answer (connect timed out)",
    ],
    [new Deno.errors.UnexpectedEof("unexpected end of file"), null],
    [new Error("received corrupt message of type InvalidContentType"), null],
    ["not an error", null],
  ];
  for (const [error, reason] of cases) {
    assertEquals(unreachableReason(error, "h.invalid"), reason, String(error));
  }
});

Deno.test("a TLS handshake that met another protocol, or a close, is told from the rest", () => {
  assertEquals(
    notTlsAnswer(new Error("received corrupt message of type InvalidContentType")),
    true,
  );
  assertEquals(
    notTlsAnswer(nodeError("ERR_SSL_WRONG_VERSION_NUMBER", "ssl3_get_record:wrong version number")),
    true,
  );
  assertEquals(notTlsAnswer(new Error("received fatal alert: HandshakeFailure")), false);
  assertEquals(
    closedDuringHandshake(new Deno.errors.UnexpectedEof("unexpected end of file")),
    true,
  );
  assertEquals(
    closedDuringHandshake(
      nodeError(
        "ECONNRESET",
        "Client network socket disconnected before secure TLS connection was established",
      ),
    ),
    true,
  );
  assertEquals(closedDuringHandshake(new Error("TLS handshake timed out after 10000 ms")), false);
});
