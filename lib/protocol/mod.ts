/**
 * Burrow's wire protocol: the frame codec, the control message catalog and
 * the tunnel spec (what a tunnel may declare, checked alike by the config
 * schema, the server's wire check and the tunnel DAO). Pure code with no I/O.
 *
 * @example
 * ```ts
 * import { encodeFrame, FrameDecoder, FrameType } from "./mod.ts";
 * const frames = [...new FrameDecoder().push(encodeFrame(FrameType.Ping, 0, new Uint8Array(8)))];
 * console.assert(frames.length === 1);
 * ```
 *
 * @module
 */

export * from "./frame.ts";
export * from "./messages.ts";
export * from "./tunnel_spec.ts";
export { type SpecProblem, TUNNEL_LIMITS } from "./tunnel_rules.ts";
export * from "./proxy_protocol.ts";
