import { assert, assertEquals } from "../testing/mod.ts";
import {
  IPPROTO_TCP,
  type LibC,
  SO_RCVBUF,
  SocketOptions,
  sockopt,
  SOL_SOCKET,
  TCP_NODELAY,
} from "./sockopt.ts";

const linux = Deno.build.os === "linux";

Deno.test({
  name: "SO_RCVBUF and SO_SNDBUF of a real UDP socket are raised and read back",
  ignore: !linux,
  fn() {
    assert(sockopt.available(), `FFI unavailable: ${sockopt.unavailableReason}`);
    assertEquals(sockopt.unavailableReason, null);
    const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    try {
      const fd = sockopt.socketFd(socket);
      assert(fd !== null && fd > 2, `fd ${fd}`);
      const before = sockopt.getIntOption(fd, SOL_SOCKET, SO_RCVBUF)!;
      // 1 MiB is below any sane net.core.rmem_max, so it is granted in full.
      const granted = sockopt.setBuffers(fd, 1 << 20);
      assertEquals(granted, { rcv: 1 << 20, snd: 1 << 20 });
      assertEquals(sockopt.getIntOption(fd, SOL_SOCKET, SO_RCVBUF), 2 << 20, "Linux doubles");
      assert(before < 2 << 20, `default ${before}`);
    } finally {
      socket.close();
    }
  },
});

Deno.test({
  name: "the fd of a Deno.connect TCP socket is found and TCP_NODELAY set and read back",
  ignore: !linux,
  async fn() {
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    using conn = await Deno.connect({ hostname: "127.0.0.1", port });
    using accepted = await listener.accept();
    const fd = sockopt.socketFd(conn);
    const peerFd = sockopt.socketFd(accepted);
    const listenerFd = sockopt.socketFd(listener);
    assert(fd !== null && peerFd !== null && listenerFd !== null);
    assertEquals(new Set([fd, peerFd, listenerFd]).size, 3, "three different sockets");
    // The same answers from one pass over the descriptors.
    const local = conn.localAddr as Deno.NetAddr;
    assertEquals(
      sockopt.findSocketFds([
        { transport: "tcp", localPort: port },
        { transport: "tcp", localPort: local.port, remotePort: port, remoteAddr: "127.0.0.1" },
        { transport: "tcp", localPort: port, remotePort: local.port },
        { transport: "udp", localPort: port },
        { transport: "tcp", localPort: local.port, remotePort: port, remoteAddr: "10.1.2.3" },
      ]),
      [listenerFd, fd, peerFd, null, null],
    );
    assert(sockopt.setIntOption(fd, IPPROTO_TCP, TCP_NODELAY, 0));
    assertEquals(sockopt.getIntOption(fd, IPPROTO_TCP, TCP_NODELAY), 0);
    assert(sockopt.setIntOption(fd, IPPROTO_TCP, TCP_NODELAY, 1));
    assertEquals(sockopt.getIntOption(fd, IPPROTO_TCP, TCP_NODELAY), 1);
    // Still a working connection.
    await conn.write(new Uint8Array([7]));
    const buf = new Uint8Array(1);
    assertEquals(await accepted.read(buf), 1);
  },
});

Deno.test({
  name: "IPv6 sockets are found by their ::1 address",
  ignore: !linux,
  fn() {
    let socket: Deno.DatagramConn;
    try {
      socket = Deno.listenDatagram({ transport: "udp", hostname: "::1", port: 0 });
    } catch {
      return; // no IPv6 loopback here
    }
    try {
      const fd = sockopt.socketFd(socket);
      assert(fd !== null);
      const port = (socket.addr as Deno.NetAddr).port;
      assertEquals(
        sockopt.findSocketFd({ transport: "udp", localPort: port, localAddr: "::1" }),
        fd,
      );
      assertEquals(
        sockopt.findSocketFd({ transport: "udp", localPort: port, localAddr: "127.0.0.1" }),
        null,
      );
    } finally {
      socket.close();
    }
  },
});

Deno.test("without FFI every call answers null or false and says why", () => {
  const cases: Array<[SocketOptions, string]> = [
    [new SocketOptions({ os: "darwin" }), 'not on Linux (this is "darwin")'],
    [
      new SocketOptions({ os: "linux", ffiPermitted: () => false }),
      "no FFI permission (run with --allow-ffi)",
    ],
    [
      new SocketOptions({
        os: "linux",
        ffiPermitted: () => true,
        open: () => {
          throw new Error("Could not open library");
        },
      }),
      "cannot open libc.so.6: Could not open library",
    ],
  ];
  for (const [off, reason] of cases) {
    assertEquals(off.available(), false);
    assertEquals(off.unavailableReason, reason);
    assertEquals(off.setIntOption(3, SOL_SOCKET, SO_RCVBUF, 1 << 20), false);
    assertEquals(off.getIntOption(3, SOL_SOCKET, SO_RCVBUF), null);
    assertEquals(off.setBuffers(3, 1 << 20), null);
    assertEquals(off.findSocketFd({ transport: "udp", localPort: 53 }), null);
    assertEquals(off.findSocketFds([{ transport: "udp", localPort: 53 }]), [null]);
  }
});

Deno.test("an injected libc: capped buffers are reported halved, the force options tried first", () => {
  const calls: string[] = [];
  const values = new Map<number, number>();
  const lib: LibC = {
    setsockopt(fd, level, name, value) {
      const v = new DataView(value.buffer).getInt32(0, true);
      calls.push(`set ${fd} ${level} ${name} ${v}`);
      if (name === 32 || name === 33) return -1; // no CAP_NET_ADMIN
      values.set(name, Math.min(v, 4 << 20) * 2); // net.core.rmem_max = 4 MiB
      return 0;
    },
    getsockopt(_fd, _level, name, value) {
      new DataView(value.buffer).setInt32(0, values.get(name) ?? 0, true);
      return 0;
    },
    getsockname: () => -1,
    getpeername: () => -1,
    fcntl: () => -1,
  };
  const options = new SocketOptions({ os: "linux", ffiPermitted: () => true, open: () => lib });
  assertEquals(options.setBuffers(9, 16 << 20), { rcv: 4 << 20, snd: 4 << 20 });
  assertEquals(calls, [
    `set 9 1 33 ${16 << 20}`,
    `set 9 1 8 ${16 << 20}`,
    `set 9 1 32 ${16 << 20}`,
    `set 9 1 7 ${16 << 20}`,
  ]);
});

Deno.test("an injected libc: sockets are matched on type, port, address and peer", () => {
  // fd → [type, local, peer]
  const table = new Map<number, [number, [number, string], [number, string] | null]>([
    [5, [1, [8080, "0.0.0.0"], null]], // TCP listener
    [6, [1, [8080, "127.0.0.1"], [40000, "127.0.0.1"]]], // accepted
    [7, [2, [8080, "0.0.0.0"], null]], // UDP, same port number
    [8, [2, [9090, "::ffff:10.0.0.1"], null]], // UDP, IPv4-mapped on a v6 socket
  ]);
  const write = (addr: Uint8Array, [port, host]: [number, string]) => {
    const view = new DataView(addr.buffer);
    view.setUint16(2, port, false);
    if (host.includes(":")) {
      view.setUint16(0, 10, true);
      addr.fill(0, 8, 24);
      view.setUint16(18, 0xffff, false);
      host.split(":").at(-1)!.split(".").forEach((b, i) => view.setUint8(20 + i, Number(b)));
    } else {
      view.setUint16(0, 2, true);
      host.split(".").forEach((b, i) => view.setUint8(4 + i, Number(b)));
    }
    return 0;
  };
  const lib: LibC = {
    setsockopt: () => 0,
    getsockopt(fd, _level, _name, value) {
      const row = table.get(fd);
      if (!row) return -1;
      new DataView(value.buffer).setInt32(0, row[0], true);
      return 0;
    },
    getsockname: (fd, addr) => table.has(fd) ? write(addr, table.get(fd)![1]) : -1,
    getpeername(fd, addr) {
      const peer = table.get(fd)?.[2];
      return peer ? write(addr, peer) : -1;
    },
    fcntl: (fd) => fd <= 8 ? 0 : -1,
  };
  const options = new SocketOptions({
    os: "linux",
    ffiPermitted: () => true,
    open: () => lib,
    listFds: () => [0, 1, 2, 5, 6, 7, 8],
  });
  assertEquals(
    options.findSocketFds([
      { transport: "udp", localPort: 8080 },
      { transport: "tcp", localPort: 8080, localAddr: "::" },
      { transport: "tcp", localPort: 8080, remotePort: 40000, remoteAddr: "127.0.0.1" },
      { transport: "tcp", localPort: 8080, remotePort: 40001 },
      { transport: "udp", localPort: 9090, localAddr: "10.0.0.1" },
      { transport: "udp", localPort: 9090, localAddr: "10.0.0.2" },
    ]),
    [7, 5, 6, null, 8, null],
  );
});
