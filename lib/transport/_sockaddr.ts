/**
 * `sockaddr_in` / `sockaddr_in6` bytes for the system calls made through
 * FFI (Linux layout), and addresses read back from them written the way
 * Deno writes them.
 *
 * @module
 */

const AF_INET = 2;
const AF_INET6 = 10;

/** Whether two `sockaddr`s name the same address and port (flow label and scope aside). */
export function sameSource(a: Uint8Array, b: Uint8Array): boolean {
  if (a[0] !== b[0] || a[1] !== b[1] || a[2] !== b[2] || a[3] !== b[3]) return false;
  const family = a[0]! | (a[1]! << 8);
  const [from, to] = family === AF_INET6 ? [8, 24] : [4, 8];
  for (let i = from; i < to; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The address of a `sockaddr`, written the way Deno writes it (`::ffff:1.2.3.4`, RFC 5952). */
export function sourceAddr(source: Uint8Array, transport: "udp" = "udp"): Deno.NetAddr {
  const view = new DataView(source.buffer, source.byteOffset, source.byteLength);
  const family = view.getUint16(0, true);
  const port = view.getUint16(2, false);
  if (family === AF_INET) {
    return { transport, hostname: source.subarray(4, 8).join("."), port };
  }
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(view.getUint16(8 + 2 * i, false));
  return { transport, hostname: formatIpv6(groups), port };
}

function formatIpv6(groups: number[]): string {
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${groups[6]! >> 8}.${groups[6]! & 255}.${groups[7]! >> 8}.${groups[7]! & 255}`;
  }
  // The longest run of two or more zero groups becomes "::" (the first of equals).
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      best = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (list: number[]) => list.map((g) => g.toString(16)).join(":");
  if (best < 0) return hex(groups);
  return `${hex(groups.slice(0, best))}::${hex(groups.slice(best + bestLength))}`;
}

/** The `sockaddr` of `addr` for a socket of IPv6 (`v6`) or IPv4 (IPv4 on IPv6 sockets mapped). */
export function toSockaddr(
  addr: { version: 4 | 6; value: bigint },
  port: number,
  v6: boolean,
): Uint8Array {
  const out = new Uint8Array(v6 ? 28 : 16);
  const view = new DataView(out.buffer);
  view.setUint16(0, v6 ? AF_INET6 : AF_INET, true);
  view.setUint16(2, port, false);
  if (!v6) {
    view.setUint32(4, Number(addr.value), false);
  } else {
    const value = addr.version === 4 ? (0xffffn << 32n) | addr.value : addr.value;
    view.setBigUint64(8, value >> 64n, false);
    view.setBigUint64(16, value & 0xffff_ffff_ffff_ffffn, false);
  }
  return out;
}
