/**
 * End-to-end probes of tunnels: the server opens a stream to the client as
 * a visitor connection would, the client dials its local service, and a
 * reset (the service refused, the client is wedged) within the timeout
 * counts as a failure. Enabled per tunnel with `probe: true`.
 *
 * @module
 */

import { type StreamOpener, StreamResetError } from "../mux/mod.ts";

/** Probes tunnel `name` over `mux`; resolves with `null` when it works, else the reason. */
export async function probeTunnel(
  mux: StreamOpener,
  name: string,
  timeoutMs: number,
): Promise<string | null> {
  if (mux.isClosed) return "client disconnected";
  const stream = mux.open({ tunnel: name, remote: "probe", probe: true });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), timeoutMs);
    });
    // Data or a clean end means the service answered; silence means it accepted and waits.
    await Promise.race([stream.read(), timeout]);
    return null;
  } catch (error) {
    return error instanceof StreamResetError ? error.message : (error as Error).message;
  } finally {
    clearTimeout(timer);
    stream.reset("probe finished");
  }
}
