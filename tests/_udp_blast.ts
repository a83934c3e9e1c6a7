// A UDP load generator for the overload test: sends 1400-byte datagrams
// starting with "B" to 127.0.0.1:PORT from SOCKETS sockets (one visitor
// session each) as fast as awaited sends go, for SECONDS, then prints
// {"sent": N} on stdout.
//
//   deno run --allow-net --unstable-net tests/_udp_blast.ts PORT SECONDS [SOCKETS]

const [port, seconds, count = 4] = Deno.args.map(Number);
if (!port || !seconds) throw new Error("Usage: _udp_blast.ts PORT SECONDS [SOCKETS]");
const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port };
const sockets = Array.from(
  { length: count },
  () => Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 }),
);
const datagram = new Uint8Array(1400).fill(0x42);
const end = performance.now() + seconds * 1000;
let sent = 0;
await Promise.all(sockets.map(async (socket) => {
  while (performance.now() < end) {
    await socket.send(datagram, to);
    sent++;
  }
}));
for (const socket of sockets) socket.close();
console.log(JSON.stringify({ sent }));
