import { assert, assertEquals } from "../testing/mod.ts";
import { raiseSocketBuffers } from "./socket_buffers.ts";
import { type LibC, SocketOptions, sockopt } from "./sockopt.ts";

Deno.test({
  name: "a real UDP socket gets the buffer asked for (below the kernel's cap)",
  ignore: Deno.build.os !== "linux",
  fn() {
    const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    try {
      const warnings: unknown[] = [];
      const granted = raiseSocketBuffers(socket, 512 * 1024, {
        logger: { warn: (...args) => warnings.push(args) },
      });
      assert(sockopt.available(), String(sockopt.unavailableReason));
      assertEquals(granted, { rcv: 512 * 1024, snd: 512 * 1024 });
      assertEquals(warnings, []);
      assertEquals(raiseSocketBuffers(socket, 0), null, "0 keeps the kernel's default");
    } finally {
      socket.close();
    }
  },
});

Deno.test("a kernel cap is warned about once, with the sysctl that lifts it", () => {
  const values = new Map<number, number>();
  const lib: LibC = {
    setsockopt(_fd, _level, name, value) {
      if (name === 32 || name === 33) return -1;
      values.set(name, Math.min(new DataView(value.buffer).getInt32(0, true), 1 << 20) * 2);
      return 0;
    },
    getsockopt(_fd, _level, name, value) {
      new DataView(value.buffer).setInt32(0, name === 3 ? 2 : values.get(name) ?? 0, true);
      return 0;
    },
    getsockname(_fd, addr) {
      const view = new DataView(addr.buffer);
      view.setUint16(0, 2, true);
      view.setUint16(2, 5353, false);
      view.setUint32(4, 0x7f000001, false);
      return 0;
    },
    getpeername: () => -1,
    fcntl: () => 0,
  };
  const options = new SocketOptions({
    os: "linux",
    ffiPermitted: () => true,
    open: () => lib,
    listFds: () => [7],
  });
  const socket = {
    addr: { transport: "udp", hostname: "127.0.0.1", port: 5353 },
  } as unknown as Deno.DatagramConn;
  const warnings: Array<[string, Record<string, unknown>]> = [];
  const logger = {
    warn: (msg: string, fields?: Record<string, unknown>) => warnings.push([msg, fields ?? {}]),
  };
  const asked = 4 * 1024 * 1024;
  assertEquals(raiseSocketBuffers(socket, asked, { logger, sockopt: options }), {
    rcv: 1 << 20,
    snd: 1 << 20,
  });
  raiseSocketBuffers(socket, asked, { logger, sockopt: options });
  assertEquals(warnings, [[
    "socket buffers capped by the kernel",
    {
      asked,
      receive: 1 << 20,
      send: 1 << 20,
      remedy: `sysctl -w net.core.rmem_max=${asked} net.core.wmem_max=${asked}`,
    },
  ]]);
});

Deno.test("without FFI nothing is set, nothing warned, and the startup notice says why", () => {
  const off = new SocketOptions({ os: "linux", ffiPermitted: () => false });
  const socket = {
    addr: { transport: "udp", hostname: "127.0.0.1", port: 5353 },
  } as unknown as Deno.DatagramConn;
  const lines: unknown[] = [];
  const logger = {
    warn: (...a: unknown[]) => lines.push(["warn", ...a]),
    info: (...a: unknown[]) => lines.push(["info", ...a]),
    debug: (...a: unknown[]) => lines.push(["debug", ...a]),
  };
  assertEquals(raiseSocketBuffers(socket, 1 << 20, { logger, sockopt: off }), null);
  off.announce(logger);
  off.announce(logger);
  assertEquals(lines, [[
    "info",
    "FFI socket options off",
    {
      reason: "no FFI permission (run with --allow-ffi)",
      effect: "UDP sockets keep the kernel's default buffers and datagrams go one Deno call " +
        "each, and TLS control connections opened by Deno's TLS (server with min_version 1.2, " +
        "client with a client certificate) keep Nagle's algorithm: all works, with less " +
        "headroom under load",
    },
  ]]);
});
