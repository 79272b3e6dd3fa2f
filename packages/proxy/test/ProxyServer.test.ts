/**
 * The proxy's server as it runs on a proxy: its real executable (`serve.ts`), started detached, supervising a
 * stand-in orchestrator (fixtures/fakeOrchestrator.mjs), spoken to on its Unix socket with the protocol's own
 * encoding. Its log resumes from any line without losing or repeating one, input and interrupts reach the
 * orchestrator, the run outlives its clients, and `Stop` removes everything.
 */
import { afterAll, assert, describe } from "@effect/vitest"
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import type { Readable } from "node:stream"
import { live } from "../../../test/fixtures/Cli.ts"
import * as Protocol from "../src/ProxyProtocol.ts"
import * as ProxyServer from "../src/ProxyServer.ts"

const serve = path.join(import.meta.dirname, "..", "src", "serve.ts")
const fake = path.join(import.meta.dirname, "fixtures", "fakeOrchestrator.mjs")
const root = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-proxy-server-"))
/** The servers the tests started: a server runs until told to stop, and the tests' ended runs are not. */
const servers: Array<child.ChildProcess> = []

/**
 * A server for a fresh namespace directory, its orchestrator ticking `ticks` times (0: until interrupted), with
 * `env` besides.
 */
const start = (ticks: number, env: Record<string, string> = {}, outputGraceMillis?: number) => {
  const files = Protocol.layoutOf(fs.mkdtempSync(path.join(root, "ns-")))
  const config: ProxyServer.Config = {
    namespace: "test",
    node: process.execPath,
    argv: [fake],
    cwd: files.dir,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", TICKS: String(ticks), TICK_MS: "20", ...env },
    ...(outputGraceMillis === undefined ? {} : { outputGraceMillis })
  }
  fs.writeFileSync(files.config, ProxyServer.encodeConfig(config))
  // Its descriptor 3 is a pipe read here: it says `listening` there once it answers.
  const server = child.spawn(process.execPath, [serve, files.dir], {
    detached: true,
    stdio: ["ignore", "ignore", "ignore", "pipe"],
    env: { ...process.env, [ProxyServer.readyFdVariable]: "3" }
  })
  server.unref()
  servers.push(server)
  return { files, server }
}

/** Sends `request` and collects the answers until the server ends the connection (or `until` says stop). */
const ask = (
  files: Protocol.Layout,
  request: Protocol.Request,
  until: (answers: ReadonlyArray<Protocol.Response>) => boolean = () => false
) =>
  new Promise<Array<Protocol.Response>>((resolve, reject) => {
    const answers: Array<Protocol.Response> = []
    let buffer = ""
    const socket = net.connect(files.socket, () => socket.write(Protocol.encodeRequest(request)))
    socket.on("data", (chunk) => {
      buffer += chunk.toString()
      const lines = buffer.split("\n")
      buffer = lines.pop() ?? ""
      for (const line of lines) answers.push(Protocol.decodeResponse(line)!)
      if (until(answers)) socket.destroy()
    })
    socket.on("close", () => resolve(answers))
    socket.on("error", reject)
  })

/**
 * A server that answers: it says so on its ready descriptor (which it closes), so nothing here polls; a server
 * that died first only closes it.
 */
const ready = async (...args: Parameters<typeof start>) => {
  const started = start(...args)
  const pipe = started.server.stdio[3] as Readable
  const said = await new Promise<string>((resolve) => {
    let text = ""
    pipe.on("data", (d: Buffer) => (text += d.toString()))
    pipe.once("close", () => resolve(text))
  })
  assert.strictEqual(said, `${ProxyServer.readyLine}\n`, "the server says it listens, once")
  return started
}

const linesOf = (answers: ReadonlyArray<Protocol.Response>) =>
  answers.flatMap((a) => (a._tag === "Lines" ? a.lines : []))

const messages = (lines: ReadonlyArray<string>) =>
  lines.map((l) => JSON.parse(l) as { type: string; message?: string; line?: string })
    .flatMap((e) => (e.type === "log" ? [e.message!] : [`${e.type}: ${e.line}`]))

const gone = async (pid: number) => {
  for (let i = 0; i < 300; i++) {
    try {
      process.kill(pid, 0)
    } catch {
      return true
    }
    await new Promise((r) => setTimeout(r, 20))
  }
  return false
}

describe("ProxyServer", () => {
  afterAll(() => {
    for (const server of servers) if (server.exitCode === null && server.signalCode === null) server.kill("SIGKILL")
    fs.rmSync(root, { recursive: true, force: true })
  })

  live("the log resumes from any line's offset: neither a lost nor a repeated line", async () => {
    const { files } = await ready(30)
    const all = await ask(files, { _tag: "Logs", from: 0, follow: true })
    assert.deepStrictEqual(all.at(-1), { _tag: "End", exitCode: 0 })
    const full = linesOf(all)
    const ticks = messages(full).filter((m) => m.startsWith("tick"))
    assert.deepStrictEqual(ticks, Array.from({ length: 30 }, (_, i) => `tick ${i + 1}`))
    assert.includeMembers(messages(full), ["console: starting", "console: not an event"])
    // Every line's start is an offset to resume from.
    let offset = 0
    for (const [i, line] of full.entries()) {
      const rest = linesOf(await ask(files, { _tag: "Logs", from: offset, follow: false }))
      assert.deepStrictEqual(rest, full.slice(i), `from line ${i}`)
      offset += Buffer.byteLength(line) + 1
    }
    const refused = await ask(files, { _tag: "Logs", from: 3, follow: false })
    assert.strictEqual(refused[0]?._tag, "Failed")
  })

  live("a follower that leaves and comes back sees the rest of a run that went on without it", async () => {
    const { files } = await ready(0)
    const first = await ask(
      files,
      { _tag: "Logs", from: 0, follow: true },
      (a) => messages(linesOf(a)).includes("tick 5")
    )
    const next = first.flatMap((a) => (a._tag === "Lines" ? [a.next] : [])).at(-1)!
    await new Promise((r) => setTimeout(r, 200))
    const status = (await ask(files, { _tag: "Status" }))[0]
    assert.strictEqual(status?._tag === "Status" && status.status.state, "running")
    assert.deepStrictEqual(await ask(files, { _tag: "Input", line: "hello" }), [{ _tag: "Done" }])
    assert.deepStrictEqual(await ask(files, { _tag: "Interrupt" }), [{ _tag: "Done" }])
    const rest = await ask(files, { _tag: "Logs", from: next, follow: true })
    assert.deepStrictEqual(rest.at(-1), { _tag: "End", exitCode: 130 })
    const shown = messages([...linesOf(first), ...linesOf(rest)])
    const ticks = shown.filter((m) => m.startsWith("tick")).map((m) => Number(m.slice(5)))
    assert.deepStrictEqual(ticks, Array.from({ length: ticks.length }, (_, i) => i + 1), "no gap, no repeat")
    assert.isAbove(ticks.length, 10, "it ticked while nobody followed")
    assert.include(shown, "input: hello")
    assert.strictEqual(shown.at(-1), "tearing down")
    const ended = (await ask(files, { _tag: "Status" }))[0]
    assert.deepStrictEqual(ended?._tag === "Status" && [ended.status.state, ended.status.exitCode], ["ended", 130])
  })

  live(
    "a process the orchestrator left holding its output does not keep the run going: it ends, its log whole",
    async () => {
      const { files } = await ready(3, { LEAVE_HOLDER: "1" }, 300)
      const all = await ask(files, { _tag: "Logs", from: 0, follow: true })
      const shown = messages(linesOf(all))
      const holder = Number(shown.find((m) => m.startsWith("holder "))?.slice(7))
      if (holder > 0) process.kill(holder, "SIGKILL")
      assert.deepStrictEqual(all.at(-1), { _tag: "End", exitCode: 0 })
      assert.deepStrictEqual(shown.filter((m) => m.startsWith("tick")), ["tick 1", "tick 2", "tick 3"])
      assert.isAbove(holder, 0, "the holder was left")
    }
  )

  live("Stop tears a running run down, answers once it has ended, then removes everything and exits", async () => {
    const { files, server } = await ready(0)
    assert.strictEqual(fs.statSync(files.socket).mode & 0o777, 0o600)
    assert.strictEqual(fs.statSync(files.log).mode & 0o777, 0o600)
    const status = (await ask(files, { _tag: "Status" }))[0]
    const pid = status?._tag === "Status" ? status.status.pid : 0
    // A client that never says anything nor leaves does not keep the server.
    const idle = net.connect({ path: files.socket, allowHalfOpen: true })
    idle.on("error", () => {})
    assert.deepStrictEqual(await ask(files, { _tag: "Stop" }), [{ _tag: "Done" }])
    assert.isTrue(await gone(pid), "the orchestrator has ended")
    assert.isTrue(await gone(server.pid!), "the server has exited")
    assert.isFalse(fs.existsSync(files.dir))
    idle.destroy()
  })
})
