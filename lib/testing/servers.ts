/**
 * Throwaway network servers for tests: on 127.0.0.1, port 0, closed by
 * disposal.
 *
 * @module
 */

/** A TCP server on 127.0.0.1 that runs `handle` per connection; disposal closes it and waits. */
export function rawTcpServer(
  handle: (conn: Deno.TcpConn) => Promise<void>,
): { port: number } & AsyncDisposable {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const tasks: Promise<void>[] = [];
  const loop = (async () => {
    for await (const conn of listener) {
      tasks.push(
        handle(conn).catch(() => {}).finally(() => {
          try {
            conn.close();
          } catch { /* closed */ }
        }),
      );
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async [Symbol.asyncDispose]() {
      listener.close();
      await loop;
      await Promise.all(tasks);
    },
  };
}
