/**
 * The Burrow server (`burrowd`): control channel, client sessions, tunnels.
 *
 * @example
 * ```ts ignore
 * import { BurrowServer } from "./mod.ts";
 * const server = await BurrowServer.start(config);
 * await server.shutdown();
 * ```
 *
 * @module
 */

export { BurrowServer, type BurrowServerOptions } from "./server.ts";
export type { ClientSession, SessionHost } from "./session.ts";
export type { AuthResult, Principal } from "./login.ts";
export {
  type HistoryWrites,
  NO_HISTORY,
  type RecordedSession,
  Recorder,
  type RecorderOptions,
  type SessionRecorder,
  type TunnelIdentity,
  type TunnelRefs,
} from "./recorder.ts";
export { Bandwidth, type Limits } from "./bandwidth.ts";
export {
  acceptHandshake,
  DEFAULT_HANDSHAKE_TIMEOUT,
  type Greeted,
  type HandshakeChannel,
  type HandshakeHost,
} from "./handshake.ts";
export type { Throttle } from "../util/mod.ts";
export {
  type ConnectionEvent,
  type GroupListener,
  type GroupMember,
  GroupRegistry,
  type JoinRequest,
  type LiveTransfer,
  type OpenRequest,
  type ProbeState,
  type PublicTunnel,
  type RouteTarget,
  type TcpTunnel,
  type TcpTunnelOptions,
  type TunnelContext,
  type TunnelGroup,
  type TunnelKind,
  type TunnelTotals,
  type TunnelType,
  type UdpDropReason,
  type UdpTunnel,
  type UdpTunnelOptions,
  type VisitorGuards,
} from "./tunnels/mod.ts";
export { Balancer, type BalancerMember, type Strategy } from "./balancer.ts";
export {
  AdminApi,
  type AdminRequestOptions,
  type AdminServer,
  AdminService,
  type AdminServiceOptions,
  ApiError,
  type ApiErrorOptions,
  openApiDocument,
  readiness,
  type SchemaVersion,
  startAdmin,
  type TokenListing,
  type TunnelOverview,
  type UserPolicy,
} from "./admin/mod.ts";
export {
  limitKey,
  type LoginAttempt,
  LoginLimiter,
  type LoginLimiterOptions,
  type LoginRefusal,
} from "./login_limiter.ts";
export {
  type FrontInfo,
  type HeaderRules,
  type HttpEvent,
  HttpTunnel,
  type HttpTunnelOptions,
} from "./tunnels/mod.ts";
export { type CertificateSource, HttpFront, type HttpFrontOptions } from "./http_front.ts";
export { HttpRouter, underLocation } from "./http/router.ts";
export { type SocketTotals, StreamSocket } from "./stream_socket.ts";
export { VhostCertificates } from "./vhost_certs.ts";
export { CertManager, type CertManagerOptions, type ManagedCertificate } from "./acme.ts";
export { readSni } from "./sni.ts";
export { runServer, type RunServerOptions } from "./run.ts";
export type {
  Pace,
  RequestInfo,
  SpliceTunnel,
  Transfer,
  VisitorEndpoints,
} from "./http/splice_tunnel.ts";
export { ALERTS_LEASE, type ClusterHost, ClusterNode } from "./cluster_node.ts";
export type { ClusterTunnels, LocalSession, RelayHost } from "./cluster/mod.ts";
export type { KickableSession } from "./kicks.ts";
export type { LocalAnswer } from "./http/local_answer.ts";
export type { HeadEdit } from "./http/head_edit.ts";
export type { HeaderList, ParsedHead, RequestHead, ResponseHead } from "./http/parsed_head.ts";
export { Login, type LoginOptions } from "./login.ts";
