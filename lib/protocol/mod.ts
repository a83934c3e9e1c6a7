/**
 * Burrow's wire protocol: the frame codec and the control message catalog.
 * Pure code with no I/O.
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
