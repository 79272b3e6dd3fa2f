/**
 * Streams over a connection already open, against a real OpenSSH host (test/fixtures/SshHosts.ts): to a Unix
 * socket of the host and to a TCP port as the host sees it, both ways, and a local listener that forwards each
 * of its connections; a destination that does not answer is a clear error; the connection comes back after a
 * drop.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect, Exit, Schedule } from "effect"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import type { Duplex } from "node:stream"
import * as Integration from "../../../test/fixtures/Integration.ts"
import * as SshHosts from "../../../test/fixtures/SshHosts.ts"
import { SshClient, SshKeys, SshTunnel } from "../src/index.ts"

const enabled = Integration.available("ssh tunnel tests", [SshHosts.sshd, "/usr/bin/ssh-keygen"])
const work = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-tunnel-"))
let host: SshHosts.SshHost | undefined
let key: SshKeys.Key | undefined
let echo: net.Server | undefined
let echoPort = 0
const socketPath = path.join(work, "echo.sock")
let socketServer: net.Server | undefined

/** An echo server that prefixes what it sends back with `tag`. */
const echoServer = (tag: string) =>
  net.createServer((socket) => {
    socket.on("data", (d) => socket.write(`${tag}:${d.toString()}`))
    socket.on("error", () => {})
  })

const connect = () =>
  SshClient.connect({ host: host!.host, port: host!.port, user: SshHosts.user }, {
    privateKey: key!.privateKey,
    hostKeys: { _tag: "Insecure" },
    executor: false
  })

/** Writes `text` and resolves with the first answer. */
const roundTrip = (stream: Duplex, text: string) =>
  new Promise<string>((resolve, reject) => {
    stream.once("data", (d: Buffer) => resolve(d.toString()))
    stream.once("error", reject)
    stream.write(text)
  })

describe.runIf(enabled)("SshTunnel", () => {
  beforeAll(async () => {
    key = await Effect.runPromise(SshKeys.ensure("tunnel-test", undefined, path.join(work, "home")))
    host = await SshHosts.start({ authorizedKeys: [key.publicKey] })
    echo = echoServer("tcp")
    await new Promise<void>((resolve) => echo!.listen(0, "127.0.0.1", resolve))
    echoPort = (echo.address() as net.AddressInfo).port
    // The host's user is not ours: the socket and its directory must let it in.
    fs.chmodSync(work, 0o755)
    socketServer = echoServer("unix")
    await new Promise<void>((resolve) => socketServer!.listen(socketPath, resolve))
    fs.chmodSync(socketPath, 0o777)
  })

  afterAll(async () => {
    echo?.close()
    socketServer?.close()
    await host?.stop()
    fs.rmSync(work, { recursive: true, force: true })
  })

  it.live(
    "a stream to a Unix socket and one to a TCP port of the host, on the connection already open",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const connection = yield* connect()
        const unix = yield* SshTunnel.open(connection, SshTunnel.socket(socketPath))
        const tcp = yield* SshTunnel.open(connection, SshTunnel.tcp("127.0.0.1", echoPort))
        assert.strictEqual(yield* Effect.promise(() => roundTrip(unix, "a")), "unix:a")
        assert.strictEqual(yield* Effect.promise(() => roundTrip(tcp, "b")), "tcp:b")
        const missing = yield* Effect.exit(SshTunnel.open(connection, SshTunnel.socket(path.join(work, "none.sock"))))
        assert.isTrue(Exit.isFailure(missing))
        assert.include(String(Exit.isFailure(missing) && missing.cause), "none.sock")
      })),
    60_000
  )

  it.live(
    "a local listener forwards each of its connections, also after the connection dropped",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const connection = yield* connect()
        const listener = yield* SshTunnel.listen(connection, SshTunnel.tcp("127.0.0.1", echoPort), 0)
        const through = (text: string) =>
          Effect.tryPromise(() =>
            new Promise<string>((resolve, reject) => {
              const socket = net.connect(listener.port, "127.0.0.1", () => {
                socket.once("data", (d) => {
                  resolve(d.toString())
                  socket.destroy()
                })
                socket.write(text)
              })
              socket.once("error", reject)
              socket.once("close", () => reject(new Error("closed without an answer")))
            })
          )
        assert.deepStrictEqual(yield* Effect.all([through("1"), through("2")], { concurrency: 2 }), ["tcp:1", "tcp:2"])
        yield* Effect.promise(() => host!.kill())
        yield* Effect.promise(() => host!.restart())
        const again = through("3").pipe(Effect.retry({ times: 20, schedule: Schedule.spaced("100 millis") }))
        assert.strictEqual(yield* again, "tcp:3")
      })),
    60_000
  )
})
