/**
 * systemd's two protocols, spoken as gunicorn speaks them:
 *
 * - Socket activation (sd_listen_fds(3)): systemd opens the listening sockets itself and starts the service
 *   with them as descriptors 3, 4, … and `LISTEN_FDS=N`, `LISTEN_PID=<the pid they are meant for>`.
 *   grainbows then listens on them instead of its binds. On Node 20 the process systemd starts is a
 *   launcher (relaunch.ts) that passes the descriptors on to its child at the same numbers, so the child
 *   also accepts them when `LISTEN_PID` is its launcher's.
 * - Readiness (sd_notify(3)): datagrams to the unix socket in `$NOTIFY_SOCKET`. `READY=1` once the actors
 *   serve, with `MAINPID=` from the serving process (a launcher's child, or a binary upgrade's successor,
 *   which systemd must follow instead of the process it started); `RELOADING=1` … `READY=1` around a
 *   reload; `STOPPING=1` when stopping. Node cannot send a unix datagram, so this goes through the C
 *   library (libc.ts).
 */
import os from 'node:os';
import { libc } from '../../shared/libc.js';
import type { Logger } from '../../shared/log.js';

/** The first descriptor systemd passes (SD_LISTEN_FDS_START). */
const LISTEN_FDS_START = 3;

/**
 * The descriptors systemd passed to one of `owners` (pids), or none: `LISTEN_FDS` unset or not a count, or
 * meant for another process.
 */
export function activatedDescriptors(env: NodeJS.ProcessEnv, owners: readonly number[]): number[] {
  const count = Number(env.LISTEN_FDS);
  if (!env.LISTEN_FDS || !Number.isInteger(count) || count < 1 || !owners.includes(Number(env.LISTEN_PID))) return [];
  return Array.from({ length: count }, (_, index) => LISTEN_FDS_START + index);
}

/** Removes the socket-activation variables, so that no process this one starts takes the descriptors for its own. */
export function forgetActivation(env: NodeJS.ProcessEnv): void {
  delete env.LISTEN_FDS;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDNAMES;
}

/** What the service manager is told, as the arbiter's lifecycle moves. */
export type ServiceState = 'ready' | 'reloading' | 'stopping';

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_NOSIGNAL = 0x4000;
/** sizeof(sockaddr_un.sun_path) on Linux. */
const SUN_PATH_MAX = 108;

type SendDatagram = (message: string) => boolean;

/** Tells systemd about this service, when it asked to be told (`$NOTIFY_SOCKET` set). */
export class ServiceNotifier {
  private constructor(
    private readonly send: SendDatagram,
    private readonly log: Logger,
  ) {}

  /**
   * A notifier for `$NOTIFY_SOCKET`, or undefined when it is unset. When it is set but the datagram cannot
   * be sent (not Linux, or the C library cannot load), a warning says so: a `Type=notify` unit would
   * otherwise time out without a word.
   */
  static async open(env: NodeJS.ProcessEnv, log: Logger): Promise<ServiceNotifier | undefined> {
    const target = env.NOTIFY_SOCKET;
    if (!target) return undefined;
    const send = await datagramSender(target);
    if (typeof send === 'string') {
      log.warning(`NOTIFY_SOCKET is set, but systemd cannot be told this service's state: ${send}`);
      return undefined;
    }
    return new ServiceNotifier(send, log);
  }

  /** The state, in sd_notify's words; `ready` also names this process as the service's main process. */
  tell(state: ServiceState): void {
    const message =
      state === 'ready'
        ? `READY=1\nMAINPID=${process.pid}\nSTATUS=Serving`
        : state === 'reloading'
          ? `RELOADING=1\nMONOTONIC_USEC=${process.hrtime.bigint() / 1000n}\nSTATUS=Reloading`
          : 'STOPPING=1\nSTATUS=Stopping';
    if (!this.send(message)) this.log.warning(`could not tell systemd ${message.split('\n')[0]}`);
  }
}

/** A function sending one datagram to `target` (a path, or `@name` in the abstract namespace), or why there is none. */
async function datagramSender(target: string): Promise<SendDatagram | string> {
  if (process.platform !== 'linux') return `no notify protocol on ${process.platform}`;
  const address = unixAddress(target);
  if (typeof address === 'string') return address;
  const library = await libc();
  if (!library) return 'the optional dependency koffi is not installed or cannot load, and Node cannot send a unix datagram';
  const socket = library.func('int socket(int domain, int type, int protocol)') as (domain: number, type: number, protocol: number) => number;
  const sendto = library.func('intptr_t sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t addrlen)') as (
    fd: number,
    buffer: Buffer,
    length: number,
    flags: number,
    address: Buffer,
    addressLength: number,
  ) => number;
  const close = library.func('int close(int fd)') as (fd: number) => number;
  return (message) => {
    const fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    try {
      const payload = Buffer.from(message);
      return sendto(fd, payload, payload.length, MSG_NOSIGNAL, address, address.length) === payload.length;
    } finally {
      close(fd);
    }
  };
}

/** `struct sockaddr_un` for a path, or for `@name` in the abstract namespace (a leading NUL, no trailing one). */
function unixAddress(target: string): Buffer | string {
  const abstract = target.startsWith('@');
  const name = Buffer.from(abstract ? target.slice(1) : target);
  const pathLength = name.length + 1; // the abstract namespace's leading NUL, or a path's trailing one
  if (pathLength > SUN_PATH_MAX) return `NOTIFY_SOCKET is longer than a unix socket address can be (${SUN_PATH_MAX} bytes)`;
  if (!abstract && !target.startsWith('/')) return `NOTIFY_SOCKET must be an absolute path or @name, not '${target}'`;
  const address = Buffer.alloc(2 + pathLength);
  if (os.endianness() === 'LE') address.writeUInt16LE(AF_UNIX, 0);
  else address.writeUInt16BE(AF_UNIX, 0);
  name.copy(address, abstract ? 3 : 2);
  return address;
}
