/** A throwaway certificate authority for mutual-TLS tests. */

import "reflect-metadata";
import * as x509 from "@peculiar/x509";

const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };

async function pem(keys: CryptoKeyPair): Promise<string> {
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", keys.privateKey);
  return x509.PemConverter.encode(pkcs8, "PRIVATE KEY") + "\n";
}

function serial(): string {
  const s = crypto.getRandomValues(new Uint8Array(16));
  s[0]! &= 0x7f;
  return [...s].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** When a leaf is valid; default from an hour ago for a day. */
export interface Validity {
  /** Start of validity. */
  notBefore?: Date;
  /** End of validity. */
  notAfter?: Date;
}

const IP = /^\d{1,3}(\.\d{1,3}){3}$|:/;

/** A CA that can sign client certificates. */
export interface TestCa {
  /** PEM certificate of the CA. */
  cert: string;
  /** Issues a client certificate for `cn`. */
  issueClient(cn: string): Promise<{ cert: string; key: string }>;
  /** Issues a server certificate for `names` (DNS names or IP addresses). */
  issueServer(names: string[], validity?: Validity): Promise<{ cert: string; key: string }>;
  /** Issues a certificate that serves and dials both, as a cluster node's does under mutual TLS. */
  issueNode(names: string[]): Promise<{ cert: string; key: string }>;
}

/** Creates a CA named `name`. */
export async function createCa(name: string): Promise<TestCa> {
  const keys = await crypto.subtle.generateKey(ALG, true, ["sign", "verify"]) as CryptoKeyPair;
  const now = Date.now();
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${name}`,
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + 86_400_000),
    signingAlgorithm: ALG,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
    ],
  });
  /** A leaf signed by this CA for `subject`, with `usage` and any extra extensions. */
  const issue = async (
    subject: string,
    usage: string | string[],
    extra: x509.Extension[] = [],
    validity: Validity = {},
  ): Promise<{ cert: string; key: string }> => {
    const leafKeys = await crypto.subtle.generateKey(ALG, true, [
      "sign",
      "verify",
    ]) as CryptoKeyPair;
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `CN=${subject}`,
      issuer: ca.subject,
      notBefore: validity.notBefore ?? new Date(now - 3600_000),
      notAfter: validity.notAfter ?? new Date(now + 86_400_000),
      signingAlgorithm: ALG,
      publicKey: leafKeys.publicKey,
      signingKey: keys.privateKey,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension(Array.isArray(usage) ? usage : [usage]),
        ...extra,
      ],
    });
    return { cert: leaf.toString("pem") + "\n", key: await pem(leafKeys) };
  };
  return {
    cert: ca.toString("pem") + "\n",
    issueClient: (cn) => issue(cn, x509.ExtendedKeyUsage.clientAuth),
    issueServer: (names, validity) =>
      issue(names[0]!, x509.ExtendedKeyUsage.serverAuth, [
        new x509.SubjectAlternativeNameExtension(
          names.map((n) => ({ type: IP.test(n) ? "ip" as const : "dns" as const, value: n })),
        ),
      ], validity),
    issueNode: (names) =>
      issue(names[0]!, [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], [
        new x509.SubjectAlternativeNameExtension(
          names.map((n) => ({ type: IP.test(n) ? "ip" as const : "dns" as const, value: n })),
        ),
      ]),
  };
}
