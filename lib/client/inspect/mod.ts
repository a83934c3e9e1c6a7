/**
 * The request inspector of the client: the recorder that reads the HTTP
 * exchanges of its HTTP tunnels from copies of their bytes, the bounded
 * ring that keeps them, and the JSON API that lists and replays them.
 *
 * @example
 * ```ts ignore
 * import { Recorder, startInspectServer } from "./mod.ts";
 * const recorder = new Recorder({ maxRequests: 200, maxBody: 64 * 1024 });
 * await using api = await startInspectServer(recorder, { hostname: "127.0.0.1", port: 4040 });
 * ```
 *
 * @module
 */

export * from "./api.ts";
export * from "./recorder.ts";
export * from "./http_tap.ts";
export * from "./recorded_conn.ts";
