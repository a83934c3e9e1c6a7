/**
 * The tunnel-type family: what every type is to its session
 * ({@linkcode PublicTunnel}), how each opens ({@linkcode TunnelKind}), the
 * registry by type, and the visitor guards they share.
 *
 * Files of the server's HTTP side import `http_tunnel.ts` and `http_node.ts`
 * directly: this face also carries the HTTP kind, which imports the HTTP
 * front.
 *
 * @example
 * ```ts ignore
 * import { isTunnelType, openTunnel } from "./mod.ts";
 * if (isTunnelType(request.protocol)) {
 *   const tunnel = await openTunnel({ name: "web", request, policy: undefined }, context);
 * }
 * ```
 *
 * @module
 */

export type {
  ConnectionEvent,
  LiveTransfer,
  ProbeState,
  PublicTunnel,
  RouteTarget,
  TunnelTotals,
  TunnelType,
} from "./public_tunnel.ts";
export { TunnelError } from "./public_tunnel.ts";
export type {
  BindOptions,
  OpenRequest,
  TunnelContext,
  TunnelKind,
  UdpDropReason,
} from "./context.ts";
export { bindPort } from "./context.ts";
export { VisitorGuard, type VisitorGuards, visitorPolicy } from "./guards.ts";
export {
  isTunnelType,
  listenSignature,
  managedRequest,
  openTunnel,
  TUNNEL_TYPES,
  tunnelKind,
} from "./registry.ts";
export { type GroupSettings, groupSettings, joinGroup, type JoinOptions } from "./membership.ts";
export {
  type GroupListener,
  GroupMember,
  GroupRegistry,
  type JoinRequest,
  TunnelGroup,
} from "./group.ts";
export { TcpTunnel, type TcpTunnelOptions, tcpTunnels } from "./tcp.ts";
export { UDP_SESSION_TIMEOUT, UdpTunnel, type UdpTunnelOptions, udpTunnels } from "./udp.ts";
export { type HeaderRules, HttpTunnel, type HttpTunnelOptions } from "./http_tunnel.ts";
export type { FrontInfo } from "./http_node.ts";
export type { HttpEvent } from "./http_transfers.ts";
export { httpTunnels } from "./http.ts";
