/**
 * The persistent executor against a real OpenSSH host (test/fixtures/SshHosts.ts): commands share one session,
 * a killed executor fails its commands clearly and is replaced, nothing outlives a killed orchestrator, and a
 * host whose perl cannot start falls back to one channel per command (the Runner contract passes there too).
 */
import * as NodeServices from "@effect/platform-node/NodeServices"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { CloudConfig, Ledger, RunEvents, Telemetry, TestCloud } from "@tezt-cloud/core"
import { Effect, Exit, Fiber, Layer, Logger, Metric } from "effect"
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Integration from "../../../test/fixtures/Integration.ts"
import * as Ports from "../../../test/fixtures/Ports.ts"
import * as SshHosts from "../../../test/fixtures/SshHosts.ts"
import { runnerContract } from "../../core/test/contract/RunnerContract.ts"
import { SshClient, type SshError, SshHost, SshKeys } from "../src/index.ts"

/** The agent ports of the runner contract without an executor (see `Ports.ts`). */
const ports = Ports.take(500)

const enabled = Integration.available("ssh executor tests", [SshHosts.sshd, "/usr/bin/ssh-keygen", "/usr/bin/perl"])
const work = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-executor-"))
const keyHome = path.join(work, "home")
let host: SshHosts.SshHost | undefined
let noPerl: SshHosts.SshHost | undefined
let banner: SshHosts.SshHost | undefined
let hostile: SshHosts.SshHost | undefined
/** A directory the test hosts' user can read and write (the module that corrupts executors, files of tests). */
const shared = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-executor-shared-"))
/** Once this file exists, the next executor of `hostile` sends a corrupt frame (fixtures/tezt_cloud_corrupt.pm). */
const trigger = path.join(shared, "corrupt-now")
let key: SshKeys.Key | undefined
const contractNamespace = `ex-${process.pid}`

const connect = (target: SshHosts.SshHost, executor = true) =>
  SshClient.connect({ host: target.host, port: target.port, user: SshHosts.user }, {
    privateKey: key!.privateKey,
    hostKeys: { _tag: "Insecure" },
    executor
  })

const quiet = { onStdout: () => {}, onStderr: () => {} }

/**
 * Runs `command` through the connection's executor, in the background, once `processes` processes carry its
 * marker: the fiber, the marker and the executor's pid.
 */
const runMarked = (connection: SshClient.Connection, command: string, processes: number) =>
  Effect.gen(function*() {
    let marker = ""
    const running = yield* Effect.forkChild(connection.exec(`echo "$TEZT_CLOUD_XREQ"; ${command}`, {
      onStdout: (c) => (marker ||= c.toString().trim()),
      onStderr: () => {}
    }))
    assert.isTrue(yield* eventually(() => marker !== "" && marked(`TEZT_CLOUD_XREQ=${marker}`).length >= processes))
    return { running, marker, first: connection.executorPid()! }
  })

/** The message of the failure `running` ends with (within 30 s: a test of a hang fails, it does not hang). */
const failureOf = (running: Fiber.Fiber<unknown, unknown>) =>
  Effect.gen(function*() {
    const exit = yield* Fiber.await(running).pipe(Effect.timeout("30 seconds"))
    assert.isTrue(Exit.isFailure(exit))
    return Exit.isFailure(exit) ? String(exit.cause) : ""
  })

/** After a lost executor: the command's tree is gone, and the next command runs on a new executor. */
const replaced = (connection: SshClient.Connection, marker: string, first: number) =>
  Effect.gen(function*() {
    assert.isTrue(yield* eventually(() => marked(`TEZT_CLOUD_XREQ=${marker}`).length === 0))
    const restarts = (yield* Metric.value(Telemetry.executorRestarts)).count
    const next = yield* connection.run("echo again")
    assert.strictEqual(next.stdout, "again\n")
    assert.notStrictEqual(connection.executorPid(), first)
    // Counted in the tool's own metrics (`--open-telemetry`).
    assert.strictEqual((yield* Metric.value(Telemetry.executorRestarts)).count, restarts + 1)
  })

/** Pids of the processes whose environment has `marker` (a `KEY=VALUE` entry). */
const marked = (marker: string) =>
  child.execFileSync("sh", ["-c", `grep -lzxF -- '${marker}' /proc/[0-9]*/environ 2>/dev/null || true`])
    .toString().trim().split("\n").filter((l) => l !== "")

const alive = (pid: number) => {
  try {
    return !fs.readFileSync(`/proc/${pid}/stat`, "utf8").includes(") Z ")
  } catch {
    return false
  }
}

/** Polls `check` every 100 ms for up to `millis`; returns its last value. */
const eventually = (check: () => boolean, millis = 10_000) =>
  Effect.promise(async () => {
    const until = Date.now() + millis
    while (!check() && Date.now() < until) await new Promise((r) => setTimeout(r, 100))
    return check()
  })

describe.runIf(enabled)("executor", () => {
  beforeAll(async () => {
    key = await Effect.runPromise(SshKeys.ensure("executor-test", undefined, keyHome))
    const contractKey = await Effect.runPromise(SshKeys.ensure(contractNamespace, undefined, keyHome))
    host = await SshHosts.start({ authorizedKeys: [key.publicKey] })
    // A host where perl cannot start: every session gets a PERL5OPT loading a module that does not exist.
    noPerl = await SshHosts.start({
      authorizedKeys: [key.publicKey, contractKey.publicKey],
      extraConfig: ["SetEnv PERL5OPT=-Mtezt_cloud_no_such_module"]
    })
    fs.chmodSync(shared, 0o777)
    fs.copyFileSync(
      path.join(import.meta.dirname, "fixtures/tezt_cloud_corrupt.pm"),
      path.join(shared, "tezt_cloud_corrupt.pm")
    )
    const corrupting = (
      how: string
    ) => [`SetEnv PERL5OPT=-Mtezt_cloud_corrupt PERL5LIB=${shared} TEZT_CLOUD_CORRUPT=${how}`]
    // Hosts whose executor sends what no executor sends: a greeting before it starts, a bad frame once running.
    banner = await SshHosts.start({ authorizedKeys: [key.publicKey], extraConfig: corrupting("banner") })
    hostile = await SshHosts.start({ authorizedKeys: [key.publicKey], extraConfig: corrupting(trigger) })
  })

  afterAll(async () => {
    await host?.stop()
    await noPerl?.stop()
    await banner?.stop()
    await hostile?.stop()
    fs.rmSync(work, { recursive: true, force: true })
    fs.rmSync(shared, { recursive: true, force: true })
  })

  it.live(
    "many commands share one executor session: no channel per command",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const connection = yield* connect(host!)
        const results = yield* Effect.forEach(
          Array.from({ length: 100 }, (_, i) => i),
          (i) => connection.run(`echo ${i}; [ -n "$TEZT_CLOUD_XREQ" ]`),
          { concurrency: "unbounded" }
        )
        assert.deepStrictEqual(results.map((r) => [r.code, r.stdout]), results.map((_, i) => [0, `${i}\n`]))
        const pid = connection.executorPid()
        assert.isDefined(pid)
        assert.include(fs.readFileSync(`/proc/${pid}/cmdline`, "utf8"), "tezt-cloud-executor")
        assert.strictEqual(connection.openChannels(), 0)
        // A Command runs without a shell, in a session of its own: its pid is its process group and session.
        let commandPid = 0
        const out: Array<Buffer> = []
        const exit = yield* connection.execCommand(
          { argv: ["sh", "-c", "echo $$ $(ps -o pgid=,sid= -p $$) \"$X\" \"$PWD\""], env: { X: "a b'c" }, cwd: "/tmp" },
          { onPid: (p) => (commandPid = p), onStdout: (c) => out.push(c), onStderr: () => {} }
        )
        assert.strictEqual(exit.code, 0)
        const [pidOut, pgid, sid, ...rest] = Buffer.concat(out).toString().trim().split(/\s+/)
        assert.deepStrictEqual([Number(pidOut), Number(pgid), Number(sid)], [commandPid, commandPid, commandPid])
        assert.deepStrictEqual(rest, ["a", "b'c", "/tmp"])
        assert.strictEqual(connection.executorPid(), pid)
      })),
    60_000
  )

  it.live(
    "stdin reaches the command in acknowledged chunks, byte for byte",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const connection = yield* connect(host!)
        const data = Buffer.alloc(3 * 1024 * 1024 + 17)
        for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff
        const result = yield* connection.run(
          "md5sum",
          (async function*() {
            yield data
          })()
        )
        assert.strictEqual(result.code, 0)
        const expected = yield* Effect.sync(() => child.execFileSync("md5sum", { input: data }).toString())
        assert.strictEqual(result.stdout, expected)
      })),
    60_000
  )

  it.live(
    "the executor killed mid-command: a clear error, the command's tree killed, a new executor next",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const connection = yield* connect(host!)
        const { first, marker, running } = yield* runMarked(connection, `sh -c 'setsid sleep 300 & wait'`, 2)
        process.kill(first, "SIGKILL")
        const message = yield* failureOf(running)
        assert.include(message, `${SshHosts.user}@${host!.host}:${host!.port}`)
        assert.include(message, "executor on the host stopped during the command (killed by SIGKILL)")
        // Its tree, the setsid grandchild included, is killed through a plain channel.
        yield* replaced(connection, marker, first)
      })),
    60_000
  )

  it.live(
    "the orchestrator killed: its executor and the commands it ran are gone once the session closes",
    () =>
      Effect.promise(async () => {
        const holder = child.spawn(process.execPath, [
          path.join(import.meta.dirname, "fixtures/holdExecutor.ts"),
          `${SshHosts.user}@${host!.host}:${host!.port}`,
          key!.path
        ], { stdio: ["ignore", "pipe", "inherit"] })
        let out = ""
        holder.stdout.on("data", (c: Buffer) => (out += c.toString()))
        const until = Date.now() + 20_000
        while (!/marker \S+/.test(out) && Date.now() < until) await new Promise((r) => setTimeout(r, 50))
        const executor = Number(/executor (\d+)/.exec(out)?.[1])
        const marker = /marker (\S+)/.exec(out)?.[1] ?? ""
        assert.isTrue(alive(executor), out)
        assert.strictEqual(marked(`TEZT_CLOUD_XREQ=${marker}`).length, 1)
        holder.kill("SIGKILL")
        assert.isTrue(await Effect.runPromise(eventually(() => !alive(executor))), "the executor is still running")
        assert.isTrue(
          await Effect.runPromise(eventually(() => marked(`TEZT_CLOUD_XREQ=${marker}`).length === 0)),
          "the command it ran is still running"
        )
      }),
    60_000
  )

  it.live("a host whose perl cannot start: commands use channels, and it is said once", () =>
    Effect.gen(function*() {
      const logs: Array<string> = []
      yield* Effect.scoped(Effect.gen(function*() {
        const connection = yield* connect(noPerl!)
        const results = yield* Effect.forEach([1, 2, 3], (i) => connection.run(`echo ${i}`), { concurrency: 1 })
        assert.deepStrictEqual(results.map((r) => r.stdout), ["1\n", "2\n", "3\n"])
        assert.isUndefined(connection.executorPid())
      })).pipe(Effect.provide(Logger.layer([Logger.make(({ message }) => void logs.push(String(message)))])))
      const notices = logs.filter((l) => l.includes("no persistent executor"))
      assert.strictEqual(notices.length, 1, logs.join("\n"))
      assert.include(notices[0]!, "tezt_cloud_no_such_module")
      assert.include(notices[0]!, "each command opens an ssh session instead")
    }), 60_000)

  it.live(
    "a NUL byte in an argument, a variable, the directory or a shell line is refused before anything is sent",
    () =>
      Effect.gen(function*() {
        for (const executor of [true, false]) {
          yield* Effect.scoped(Effect.gen(function*() {
            const connection = yield* connect(host!, executor)
            const file = path.join(shared, `nul-${executor}`)
            const attempts: ReadonlyArray<Effect.Effect<unknown, SshError.SshError>> = [
              // On the executor, the frame's fields are NUL-separated: the rest of a value would be another field.
              connection.execCommand({ argv: ["touch", `${file}\0${file}-2`], env: {}, cwd: shared }, quiet),
              connection.execCommand(
                { argv: ["sh", "-c", `touch "$F"`], env: { F: file, G: `x\0${file}-3` }, cwd: shared },
                quiet
              ),
              connection.execCommand({ argv: ["touch", file], env: {}, cwd: `${shared}\0/tmp` }, quiet),
              connection.execCommand({ argv: ["touch", file], env: { [`A\0B`]: "1" }, cwd: shared }, quiet),
              // On a channel, sshd would cut the line at the NUL and run what comes before.
              connection.exec(`touch ${file}\0-never`, quiet),
              connection.run(`touch ${file}\0`)
            ]
            for (const attempt of attempts) {
              const error = yield* Effect.flip(attempt)
              assert.strictEqual(error.reason._tag, "CommandInvalid", error.message)
              assert.include(error.message, "NUL")
            }
            assert.deepStrictEqual(fs.readdirSync(shared).filter((f) => f.startsWith("nul-")), [])
            // Nothing was sent: the connection works on as before.
            assert.strictEqual((yield* connection.run("echo fine")).stdout, "fine\n")
          }))
        }
      }),
    60_000
  )

  it.live(
    "a host whose shell greets on stdout before the executor starts: no executor, said once with why",
    () =>
      Effect.gen(function*() {
        const logs: Array<string> = []
        yield* Effect.scoped(Effect.gen(function*() {
          const connection = yield* connect(banner!)
          const results = yield* Effect.forEach([1, 2], (i) => connection.run(`echo ${i}`), { concurrency: 1 })
          assert.deepStrictEqual(results.map((r) => r.stdout), ["1\n", "2\n"])
          assert.isUndefined(connection.executorPid())
        })).pipe(Effect.provide(Logger.layer([Logger.make(({ message }) => void logs.push(String(message)))])))
        const notices = logs.filter((l) => l.includes("no persistent executor"))
        assert.strictEqual(notices.length, 1, logs.join("\n"))
        assert.include(notices[0]!, "it sent a frame of unknown type 'W'")
      }),
    60_000
  )

  it.live(
    "a corrupt frame from a running executor ends it: its command fails clearly, its tree is killed, a new one next",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const connection = yield* connect(hostile!)
        const { first, marker, running } = yield* runMarked(connection, "exec sleep 300", 1)
        fs.writeFileSync(trigger, "")
        // A frame header announcing 4 GiB: the command must not wait for it (nor memory fill up with what follows).
        assert.include(
          yield* failureOf(running),
          "the executor on the host sent a frame of type 'O' of 4294967295 bytes (at most 65536): it is stopped"
        )
        assert.isTrue(yield* eventually(() => !alive(first)), "the corrupt executor still runs")
        yield* replaced(connection, marker, first)
      })),
    60_000
  )

  it.live(
    "on a channel, output before the pid line is passed on as output, never held until a newline",
    () =>
      Effect.scoped(Effect.gen(function*() {
        // A `setsid` first on PATH that prints 200 kB without a newline before the real one prints the pid line.
        const bin = path.join(shared, "noisy-bin")
        fs.mkdirSync(bin, { mode: 0o755 })
        fs.writeFileSync(
          path.join(bin, "setsid"),
          `#!/bin/sh\nhead -c 200000 /dev/zero | tr '\\0' x\nexec /usr/bin/setsid "$@"\n`,
          { mode: 0o755 }
        )
        const connection = yield* connect(host!, false)
        const out: Array<Buffer> = []
        let pid: number | undefined
        const exit = yield* connection.execCommand(
          { argv: ["echo", "done"], env: {}, cwd: shared, pathPrefix: bin },
          { onPid: (p) => (pid = p), onStdout: (c) => out.push(c), onStderr: () => {} }
        )
        assert.strictEqual(exit.code, 0)
        const text = Buffer.concat(out).toString()
        assert.strictEqual(text.slice(0, 200_000), "x".repeat(200_000))
        assert.match(text.slice(200_000), /^\d+\ndone\n$/)
        assert.isUndefined(pid)
      })),
    60_000
  )

  runnerContract(
    "ssh-host without an executor (perl cannot start)",
    Layer.unwrap(Effect.gen(function*() {
      const config = yield* TestCloud.config({
        tezt_cloud: contractNamespace,
        localhost: false,
        ssh_host: `${SshHosts.user}@${noPerl!.host}:${noPerl!.port}`,
        vm_base_port: ports,
        ports_per_vm: 10
      })
      return Layer.mergeAll(
        SshHost.layer({
          stateDir: work,
          config,
          target: { user: SshHosts.user, host: noPerl!.host, port: noPerl!.port },
          artifactsDir: path.join(work, "artifacts"),
          keyHome,
          graceSeconds: 1
        }),
        Layer.succeed(CloudConfig.CurrentConfig, config)
      ).pipe(Layer.provideMerge(Layer.mergeAll(
        Ledger.Ledger.layer(work, config.namespace),
        RunEvents.RunEvents.layer([]),
        NodeServices.layer
      )))
    })),
    { timeout: 60_000 }
  )
})
