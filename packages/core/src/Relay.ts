/**
 * A user-space TCP relay in front of one agent's ports on this machine's loopback: what delays, caps and cuts
 * an agent's traffic where the kernel has no `netem` and a queueing discipline on the shared loopback would slow
 * every process of the machine. `LoopbackNetwork` sends new connections to the agent's ports through it (an nft
 * `redirect`); the relay finds where each one was going and who opened it in `/proc`, and forwards it from
 * `sourceAddress`, which the redirect leaves alone.
 *
 * **Details**
 *
 * - Shaping: each piece of data waits the sum of the active delays `± jitter` (uniformly, from the run's seeded
 *   source), never less than the piece before it (a stream is never reordered), and, under a bandwidth cap (the
 *   lowest active one), until the cap lets its bytes through: the agent's connections share the cap of each
 *   direction. Each direction of a connection has its own queue and one timer.
 * - Cuts: connections opened by a process of a blocked agent (`TEZT_CLOUD_AGENT` in its environment) are held
 *   open and get nothing through, as across a real partition; once the last block on that agent is lifted they
 *   are closed and new ones go through again.
 * - Back-pressure: a direction stops reading once 1 MiB waits in its queue.
 */
import { Effect, type Scope } from "effect"
import * as fs from "node:fs"
import * as net from "node:net"
import * as CloudError from "./CloudError.ts"

/** The address the relay connects from: the redirect skips it, so relayed traffic is not relayed again. */
export const sourceAddress = "127.0.0.2"

export interface Relay {
  /** The port it listens on (127.0.0.1). */
  readonly port: number
  /** Adds a delay (summed with the others) until the returned effect removes it. */
  addDelay(millis: number, jitterMillis: number): Effect.Effect<Effect.Effect<void>>
  /** Adds a bandwidth cap (the lowest holds) until the returned effect removes it. */
  addCap(bytesPerSecond: number): Effect.Effect<Effect.Effect<void>>
  /** Blocks connections opened by processes of `agents` until the returned effect lifts it. */
  block(agents: ReadonlyArray<string>): Effect.Effect<Effect.Effect<void>>
}

export interface Options {
  readonly agent: string
  readonly namespace: string
  /** The ports it stands in front of (inclusive). */
  readonly first: number
  readonly last: number
  /** The seeded source of jitter. */
  readonly random: () => number
  /** Ports it must not listen on (the run's agents' ranges). */
  readonly avoid: (port: number) => boolean
}

const highWater = 1024 * 1024

interface Piece {
  readonly chunk: Buffer | undefined
  readonly due: number
}

/** The relay, listening until the current scope closes (every relayed connection is closed then). */
export const make = (options: Options): Effect.Effect<Relay, CloudError.CloudError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.callback<{ server: net.Server; relay: Relay; connections: Set<Connection> }, CloudError.CloudError>(
      (resume) => {
        const delays = new Map<number, readonly [number, number]>()
        const caps = new Map<number, number>()
        const blocked = new Map<string, number>()
        const connections = new Set<Connection>()
        // Under a cap, the connections of each direction share its bytes.
        const toAgent: Bucket = { free: 0 }
        const fromAgent: Bucket = { free: 0 }
        let nextId = 0
        const shape = () => {
          let millis = 0
          let jitter = 0
          for (const [d, j] of delays.values()) {
            millis += d
            jitter += j
          }
          const rate = caps.size === 0 ? undefined : Math.min(...caps.values())
          return { millis, jitter, rate }
        }
        const waitFor = () => {
          const s = shape()
          return Math.max(0, s.millis + (options.random() * 2 - 1) * s.jitter)
        }
        const isBlocked = (c: Connection) => c.source !== undefined && (blocked.get(c.source) ?? 0) > 0
        const server = net.createServer({ pauseOnConnect: true }, (client) => {
          const found = originOf(client.remotePort ?? 0, options.first, options.last)
          if (found === undefined) {
            client.destroy()
            return
          }
          const connection: Connection = {
            client,
            upstream: undefined,
            source: blocked.size === 0 ? undefined : ownerOf(found.inode, options.namespace),
            inode: found.inode,
            resolved: blocked.size > 0
          }
          connections.add(connection)
          client.on("close", () => connections.delete(connection))
          client.on("error", () => client.destroy())
          if (isBlocked(connection)) {
            // Held open, nothing through: a partition.
            client.on("data", () => undefined)
            client.resume()
            return
          }
          const upstream = net.connect({ host: found.host, port: found.port, localAddress: sourceAddress })
          connection.upstream = upstream
          upstream.on("error", () => {
            upstream.destroy()
            client.destroy()
          })
          client.on("close", () => upstream.destroy())
          upstream.on("close", () => client.destroy())
          forward(client, upstream, waitFor, () => shape().rate, toAgent)
          forward(upstream, client, waitFor, () => shape().rate, fromAgent)
          client.resume()
        })
        const add = <V>(map: Map<number, V>, value: V) =>
          Effect.sync(() => {
            const id = nextId++
            map.set(id, value)
            return Effect.sync(() => void map.delete(id))
          })
        const relay = (port: number): Relay => ({
          port,
          addDelay: (millis, jitterMillis) => add(delays, [millis, jitterMillis] as const),
          addCap: (bytesPerSecond) => add(caps, bytesPerSecond),
          block: (agents) =>
            Effect.sync(() => {
              for (const a of agents) blocked.set(a, (blocked.get(a) ?? 0) + 1)
              // Open connections from now blocked agents are cut too.
              for (const c of connections) {
                if (!c.resolved) {
                  c.source = ownerOf(c.inode, options.namespace)
                  c.resolved = true
                }
                if (isBlocked(c)) {
                  c.upstream?.destroy()
                  c.client.destroy()
                }
              }
              return Effect.sync(() => {
                for (const a of agents) {
                  const n = (blocked.get(a) ?? 1) - 1
                  if (n > 0) blocked.set(a, n)
                  else blocked.delete(a)
                }
                for (const c of connections) if (c.upstream === undefined && !isBlocked(c)) c.client.destroy()
              })
            })
        })
        server.once("error", (e) =>
          resume(Effect.fail(
            CloudError.service(`relay of ${options.agent}`, `cannot listen: ${CloudError.messageOf(e)}`, { cause: e })
          )))
        // A port the kernel picks, but none an agent of the run may take for its own service.
        const listen = (attempt: number) =>
          server.listen(0, "127.0.0.1", () => {
            const address = server.address()
            const port = typeof address === "object" && address !== null ? address.port : 0
            if (options.avoid(port) && attempt < 20) server.close(() => listen(attempt + 1))
            else resume(Effect.succeed({ server, relay: relay(port), connections }))
          })
        listen(0)
      }
    ),
    ({ connections, server }) =>
      Effect.callback<void>((resume) => {
        for (const c of connections) {
          c.upstream?.destroy()
          c.client.destroy()
        }
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ relay }) => relay))

interface Connection {
  readonly client: net.Socket
  upstream: net.Socket | undefined
  /** The agent whose process opened it, once looked up. */
  source: string | undefined
  readonly inode: string
  resolved: boolean
}

/** When the capped link of one direction is free again (ms on `performance.now()`'s clock). */
interface Bucket {
  free: number
}

/**
 * Forwards `from` to `to` with each piece held as long as `waitFor` and `rate` (bytes/s, or none; `bucket`: the
 * direction's link, shared by its connections) say.
 */
const forward = (
  from: net.Socket,
  to: net.Socket,
  waitFor: () => number,
  rate: () => number | undefined,
  bucket: Bucket
) => {
  const queue: Array<Piece> = []
  let queued = 0
  let lastDue = 0
  let timer: NodeJS.Timeout | undefined
  // Due times on the monotonic sub-millisecond clock: on `Date.now()`'s whole milliseconds a piece could go up to
  // 1 ms before its delay was over (a 200 ms delay each way gave a 399.8 ms round trip).
  const flush = () => {
    timer = undefined
    const now = performance.now()
    while (queue.length > 0 && queue[0]!.due <= now) {
      const piece = queue.shift()!
      if (piece.chunk === undefined) {
        to.end()
        continue
      }
      queued -= piece.chunk.length
      if (!to.destroyed) to.write(piece.chunk)
    }
    if (queued < highWater && from.isPaused()) from.resume()
    schedule()
  }
  const schedule = () => {
    if (timer !== undefined || queue.length === 0) return
    // Within what a timer can wait (about 24 days): `flush` looks again at what is due.
    timer = setTimeout(flush, Math.min(2_147_483_647, Math.max(0, queue[0]!.due - performance.now())))
  }
  const push = (chunk: Buffer | undefined) => {
    const now = performance.now()
    let due = Math.max(now + waitFor(), lastDue)
    const bytesPerSecond = rate()
    if (chunk !== undefined && bytesPerSecond !== undefined) {
      bucket.free = Math.max(bucket.free, now) + (chunk.length * 1000) / bytesPerSecond
      due = Math.max(due, bucket.free)
    }
    lastDue = due
    queue.push({ chunk, due })
    if (chunk !== undefined) queued += chunk.length
    if (queued >= highWater) from.pause()
    schedule()
  }
  from.on("data", (chunk: Buffer) => push(chunk))
  from.on("end", () => push(undefined))
  to.on("close", () => {
    if (timer !== undefined) clearTimeout(timer)
  })
}

/** Where a connection from `127.0.0.1:clientPort` to one of the ports `first..last` was going, from /proc. */
const originOf = (clientPort: number, first: number, last: number) => {
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string
    try {
      text = fs.readFileSync(table, "utf8")
    } catch {
      continue
    }
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/)
      if (fields.length < 10) continue
      const [localAddress, localPort] = splitAddress(fields[1]!)
      const [remoteAddress, remotePort] = splitAddress(fields[2]!)
      if (localPort !== clientPort || remotePort < first || remotePort > last) continue
      if (!localAddress.startsWith("127.")) continue
      return { host: remoteAddress, port: remotePort, inode: fields[9]! }
    }
  }
  return undefined
}

/** An address of /proc/net/tcp (`0100007F:1F90`, or an IPv4-mapped IPv6 one) as dotted IPv4 and port. */
const splitAddress = (text: string): readonly [string, number] => {
  const [hex = "", port = "0"] = text.split(":")
  const v4 = hex.length === 32 ? hex.slice(24) : hex
  const bytes = [0, 2, 4, 6].map((i) => parseInt(v4.slice(i, i + 2), 16)).toReversed()
  return [bytes.join("."), parseInt(port, 16)]
}

/** The agent (of `namespace`) whose process holds the socket `inode`, from /proc; `undefined` when none does. */
const ownerOf = (inode: string, namespace: string): string | undefined => {
  const target = `socket:[${inode}]`
  let pids: Array<string>
  try {
    pids = fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p))
  } catch {
    return undefined
  }
  for (const pid of pids) {
    let fds: Array<string>
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`)
    } catch {
      continue
    }
    for (const fd of fds) {
      let link: string
      try {
        link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`)
      } catch {
        continue
      }
      if (link !== target) continue
      try {
        const env = fs.readFileSync(`/proc/${pid}/environ`, "utf8").split("\0")
        const marker = env.find((v) => v.startsWith("TEZT_CLOUD_AGENT="))?.slice("TEZT_CLOUD_AGENT=".length)
        return marker?.startsWith(`${namespace}/`) ? marker.slice(namespace.length + 1) : undefined
      } catch {
        return undefined
      }
    }
  }
  return undefined
}
