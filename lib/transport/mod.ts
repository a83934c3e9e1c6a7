/**
 * Dial and listen for the control channel (TLS 1.3 over TCP), an in-memory
 * pipe for tests, and the awaited, bounded sending of UDP datagrams.
 *
 * @example
 * ```ts
 * import { normalizeFingerprint } from "./mod.ts";
 * console.assert(normalizeFingerprint("AB:CD") === "sha256:abcd");
 * ```
 *
 * @module
 */

export * from "./tls.ts";
export * from "./dial_errors.ts";
export * from "./peer_reply.ts";
export * from "./memory.ts";
export * from "./node_socket.ts";
export * from "./node_tls.ts";
export * from "./listener.ts";
export * from "./udp_sender.ts";
export * from "./udp_receiver.ts";
export type { Duplex } from "./duplex.ts";
