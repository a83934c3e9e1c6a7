/**
 * OpenSSH's reverse tunnel as the reference: a private `sshd` on a free
 * loopback port with throwaway keys, and `ssh -N -R 0:127.0.0.1:PORT` clients.
 *
 * @module
 */

import { join } from "node:path";
import { freePort, type Proc, run, spawn } from "./_procs.ts";

const SSHD = "/usr/sbin/sshd";
const READY_MS = 10_000;

/** A running private sshd. */
export interface Sshd {
  proc: Proc;
  port: number;
  /** Private key authorised for root. */
  userKey: string;
}

/** Starts `sshd -D -e` with a generated config, host key and user key in `dir`. */
export async function startSshd(dir: string): Promise<Sshd> {
  const hostKey = join(dir, "host_ed25519");
  const userKey = join(dir, "user_ed25519");
  for (const key of [hostKey, userKey]) {
    await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key], 10_000);
  }
  const authorizedKeys = join(dir, "authorized_keys");
  await Deno.copyFile(`${userKey}.pub`, authorizedKeys);
  // Privilege separation needs its empty directory.
  await Deno.mkdir("/run/sshd", { recursive: true });
  const port = freePort();
  const config = join(dir, "sshd_config");
  await Deno.writeTextFile(
    config,
    [
      "ListenAddress 127.0.0.1",
      `Port ${port}`,
      `HostKey ${hostKey}`,
      `PidFile ${join(dir, "sshd.pid")}`,
      `AuthorizedKeysFile ${authorizedKeys}`,
      "StrictModes no",
      "UsePAM no",
      "PermitRootLogin yes",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "AllowTcpForwarding yes",
      "GatewayPorts no",
      "MaxStartups 100",
      "",
    ].join("\n"),
  );
  const proc = spawn("sshd", SSHD, { args: ["-D", "-e", "-f", config] });
  await proc.waitForLine(
    (l) => l.includes(`Server listening on 127.0.0.1 port ${port}`),
    READY_MS,
    "sshd listening",
  );
  return { proc, port, userKey };
}

/** An `ssh -N -R` client and the public ports sshd allocated for it. */
export interface SshTunnel {
  proc: Proc;
  /** Local port → remote (public) port. */
  remotePorts: Map<number, number>;
}

/** Options of {@linkcode startSshTunnel}. */
export interface SshTunnelOptions {
  /** Adds `-c cipher`. Default: OpenSSH's default cipher. */
  cipher?: string;
  /**
   * Allocate a pseudo-terminal (`-tt`, running `sleep` on the server instead
   * of `-N`). OpenSSH then marks the session interactive and turns Nagle off
   * on its connection, which changes request/response rates. Default false.
   */
  pty?: boolean;
}

/**
 * Starts `ssh` with one `-R 0:127.0.0.1:<local>` per local port, waiting
 * for sshd to allocate each remote port.
 */
export async function startSshTunnel(
  name: string,
  sshd: Sshd,
  localPorts: number[],
  options: SshTunnelOptions = {},
): Promise<SshTunnel> {
  const args = [
    ...(options.pty ? ["-tt"] : ["-N", "-T"]),
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "ExitOnForwardFailure=yes",
    "-o",
    "BatchMode=yes",
    "-i",
    sshd.userKey,
    "-p",
    String(sshd.port),
    ...(options.cipher ? ["-c", options.cipher] : []),
    ...localPorts.flatMap((port) => ["-R", `0:127.0.0.1:${port}`]),
    "root@127.0.0.1",
    // The remote command holds the pty session open; sshd hangs it up when ssh goes.
    ...(options.pty ? ["sleep", "86400"] : []),
  ];
  // With a pty, ssh's stdin stays open so that the remote side sees no EOF.
  const proc = spawn(name, "ssh", { args, stdinPipe: options.pty ?? false });
  const remotePorts = new Map<number, number>();
  try {
    for (const local of localPorts) {
      const line = await proc.waitForLine(
        (l) => l.endsWith(`for remote forward to 127.0.0.1:${local}`),
        READY_MS,
        `remote forward to ${local} allocated`,
      );
      remotePorts.set(local, Number(/Allocated port (\d+)/.exec(line)?.[1]));
    }
  } catch (error) {
    await proc.stop();
    throw error;
  }
  return { proc, remotePorts };
}
