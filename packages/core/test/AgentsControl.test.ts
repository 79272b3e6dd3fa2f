import { afterAll, assert, describe, it } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import * as util from "node:util"
import * as Protocol from "../src/AgentsControlProtocol.cjs"
import { AgentsControl, type Runner } from "../src/index.ts"

type Exec = Pick<Runner.Runner, "exec">

/** A runner that prints `lines` (stdout, then one on stderr) and exits with `code`. */
const printing = (code: number, ...lines: ReadonlyArray<string>): Exec => ({
  exec: (command, args, options) =>
    Effect.gen(function*() {
      for (const line of lines) yield* options?.onLine?.({ stream: "stdout", line }) ?? Effect.void
      yield* options?.onLine?.({ stream: "stderr", line: [command, ...args].join(" ") }) ?? Effect.void
      return { exitCode: code, stdout: "", stderr: "", pid: 1 }
    })
})

const dirs: Array<string> = []
afterAll(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true })
})

const socketIn = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "agents-control-"))
  dirs.push(dir)
  return path.join(dir, "control.sock")
}

/**
 * Sends one request line and collects the responses until the server ends the connection. Each line must be a
 * response as the client decodes it (`AgentsControlProtocol.decodeResponse`), with nothing dropped.
 */
const ask = (socketPath: string, request: string) =>
  Effect.promise(() =>
    new Promise<Array<Record<string, unknown>>>((resolve, reject) => {
      const socket = net.createConnection(socketPath, () => socket.write(request + "\n"))
      let text = ""
      socket.on("data", (d: Buffer) => (text += d.toString()))
      socket.on("error", reject)
      socket.on("close", () => {
        const lines = text.split("\n").filter((l) => l !== "")
        const undecoded = lines.find((l) => !util.isDeepStrictEqual(Protocol.decodeResponse(l), JSON.parse(l)))
        if (undecoded !== undefined) reject(new Error(`the client does not decode ${undecoded} as sent`))
        else resolve(lines.map((l) => JSON.parse(l) as Record<string, unknown>))
      })
    })
  )

describe("AgentsControl", () => {
  it.live("runs a request on the chosen agents, streams their lines and exit codes; the socket goes with the scope", () =>
    Effect.gen(function*() {
      const socketPath = socketIn()
      const responses = yield* Effect.scoped(Effect.gen(function*() {
        yield* AgentsControl.serve(socketPath, [["a", printing(0, "one")], ["b", printing(3)], ["c", printing(0)]])
        assert.strictEqual(fs.statSync(socketPath).mode & 0o777, 0o600)
        return yield* ask(socketPath, JSON.stringify({ argv: ["echo", "x y"], agents: ["c", "a"] }))
      }))
      assert.isFalse(fs.existsSync(socketPath))
      assert.deepStrictEqual(responses, [
        { agents: ["a", "c"] },
        { agent: "a", stream: "stdout", line: "one" },
        { agent: "a", stream: "stderr", line: "echo x y" },
        { agent: "a", exitCode: 0 },
        { agent: "c", stream: "stderr", line: "echo x y" },
        { agent: "c", exitCode: 0 }
      ])
    }))

  it.live("refuses unknown agents and malformed requests with one error; a failed command is an agent's error", () =>
    Effect.scoped(Effect.gen(function*() {
      const socketPath = socketIn()
      const failing: Exec = { exec: () => Effect.die(new Error("connection lost")) }
      yield* AgentsControl.serve(socketPath, [["a", printing(0)], ["b", failing]])
      assert.deepStrictEqual(yield* ask(socketPath, JSON.stringify({ argv: ["true"], agents: ["a", "nope"] })), [
        { error: "--agent: no agent named nope; the run's agents are a, b" }
      ])
      assert.deepStrictEqual(yield* ask(socketPath, JSON.stringify({ argv: [] })), [
        { error: "malformed request: argv must be a non-empty array of strings" }
      ])
      assert.deepStrictEqual(yield* ask(socketPath, "{"), [{ error: "malformed request: not JSON" }])
      const all = yield* ask(socketPath, JSON.stringify({ argv: ["true"] }))
      assert.deepStrictEqual(all.filter((r) => r.stream === undefined), [
        { agents: ["a", "b"] },
        { agent: "a", exitCode: 0 },
        { agent: "b", error: "connection lost" }
      ])
    })))

  it.live("runs at most maxConcurrent commands at once", () =>
    Effect.scoped(Effect.gen(function*() {
      const socketPath = socketIn()
      let running = 0
      let peak = 0
      // The first commands hold until as many run as the cap allows: then they all overlap, however slowly they
      // start, and any command past the cap (were it not enforced) would arrive while they hold.
      const full = yield* Deferred.make<void>()
      const slow: Exec = {
        exec: () =>
          Effect.gen(function*() {
            running += 1
            peak = Math.max(peak, running)
            if (running === AgentsControl.maxConcurrent) yield* Deferred.succeed(full, undefined)
            yield* Deferred.await(full)
            yield* Effect.sleep("20 millis")
            running -= 1
            return { exitCode: 0, stdout: "", stderr: "", pid: 1 }
          })
      }
      const n = AgentsControl.maxConcurrent + 44
      yield* AgentsControl.serve(socketPath, Array.from({ length: n }, (_, i) => [`agent-${i}`, slow] as const))
      const responses = yield* ask(socketPath, JSON.stringify({ argv: ["true"] }))
      assert.strictEqual(responses.filter((r) => r.exitCode === 0).length, n)
      assert.strictEqual(peak, AgentsControl.maxConcurrent)
    })))

  it.live("a client that disconnects interrupts its commands", () =>
    Effect.scoped(Effect.gen(function*() {
      const socketPath = socketIn()
      let interrupted = 0
      const forever: Exec = {
        exec: () => Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => interrupted++)))
      }
      yield* AgentsControl.serve(socketPath, [["a", forever], ["b", forever]])
      yield* Effect.promise(() =>
        new Promise<void>((resolve) => {
          const socket = net.createConnection(
            socketPath,
            () => socket.write(JSON.stringify({ argv: ["sleep"] }) + "\n")
          )
          socket.once("data", () => {
            socket.destroy()
            resolve()
          })
        })
      )
      const done = () => interrupted === 2
      for (let i = 0; i < 200 && !done(); i++) yield* Effect.sleep("10 millis")
      assert.strictEqual(interrupted, 2)
    })))

  it.live("replaces a dead run's socket file", () =>
    Effect.scoped(Effect.gen(function*() {
      const socketPath = socketIn()
      fs.writeFileSync(socketPath, "")
      yield* AgentsControl.serve(socketPath, [["a", printing(7)]])
      const responses = yield* ask(socketPath, JSON.stringify({ argv: ["true"] }))
      assert.deepStrictEqual(responses.at(-1), { agent: "a", exitCode: 7 })
    })))
})
