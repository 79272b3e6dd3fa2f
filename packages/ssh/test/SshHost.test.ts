/**
 * The ssh transport and the `--ssh-host` backend against real OpenSSH hosts (test/fixtures/SshHosts.ts): the
 * Runner contract unchanged, the channel limit, a host going down and coming back, the circuit breaker, a silent
 * host found by keepalives, bounded memory on huge output, a host in its own network namespace, and nothing left
 * on the host after a run.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { AgentConfig, CloudConfig, Deployment, Ledger, Orchestrator, RunEvents, Telemetry } from "@tezt-cloud/core"
import { Context, Effect, Exit, Fiber, Layer, Metric, Scope } from "effect"
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import * as BackendLayer from "../../../test/fixtures/BackendLayer.ts"
import * as Integration from "../../../test/fixtures/Integration.ts"
import * as Ports from "../../../test/fixtures/Ports.ts"
import * as SshHosts from "../../../test/fixtures/SshHosts.ts"
import { clockSkewChecks } from "../../core/test/contract/ClockSkew.ts"
import { runnerContract } from "../../core/test/contract/RunnerContract.ts"
import { SshClient, SshHost, SshKeys } from "../src/index.ts"

/** This file's agent ports (see `Ports.ts`). */
const ports = Ports.take(1000)

const enabled = Integration.available("ssh integration tests", [SshHosts.sshd, "/usr/bin/ssh-keygen"])
const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-ssh-"))
const keyHome = path.join(stateDir, "home")
const base = `st-${process.pid}`
let host: SshHosts.SshHost | undefined
let publicKey = ""

/** The ssh-host backend for `namespace` on the test host (or on `on`). */
const backend = (
  namespace: string,
  sinks: ReadonlyArray<RunEvents.Sink> = [],
  input: CloudConfig.Input = {},
  on?: SshHosts.SshHost
) =>
  // The test host is known once the suite starts (`beforeAll`): read it when the layer is built.
  Layer.unwrap(Effect.sync(() => {
    const target = on ?? host!
    return BackendLayer.layer({
      stateDir,
      namespace,
      sinks,
      input: {
        localhost: false,
        ssh_host: `${SshHosts.user}@${target.host}:${target.port}`,
        vm_base_port: ports,
        ports_per_vm: 10,
        ...input
      },
      deployment: (config) =>
        SshHost.layer({
          stateDir,
          config,
          target: { user: SshHosts.user, host: target.host, port: target.port },
          artifactsDir: path.join(stateDir, "artifacts"),
          keyHome,
          graceSeconds: 1
        })
    })
  }))

const deploy = (
  namespace: string,
  names: ReadonlyArray<string>,
  input: CloudConfig.Input = {},
  on?: SshHosts.SshHost
) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(backend(namespace, [], input, on))
    const config = Context.get(context, CloudConfig.CurrentConfig)
    const configs = AgentConfig.complete(names.map((name) => ({ name })), Orchestrator.agentDefaults(config))
    const agents = yield* Context.get(context, Deployment.Deployment).deploy(configs)
    return { agents, ledger: Context.get(context, Ledger.Ledger), config }
  })

/** A test host of the test's own (stopped with the scope), and a connection to it with `options`. */
const ownHost = (
  name: string,
  start: { readonly netns?: boolean },
  options: Omit<SshClient.Options, "privateKey" | "hostKeys">
) =>
  Effect.gen(function*() {
    const key = yield* SshKeys.ensure(`${base}-${name}`, undefined, keyHome)
    const own = yield* Effect.acquireRelease(
      Effect.promise(() => SshHosts.start({ authorizedKeys: [key.publicKey], ...start })),
      (h) => Effect.promise(() => h.stop())
    )
    const connection = yield* SshClient.connect(
      { host: own.host, port: own.port, user: SshHosts.user },
      { privateKey: key.privateKey, hostKeys: { _tag: "Insecure" }, ...options }
    )
    return { own, connection }
  })

/** What the namespace has on the host: its directory, and processes carrying its marker. */
const leftovers = (namespace: string) => {
  const dir = path.join("/tmp", `tezt-cloud-${SshHosts.ensureUser()}`, namespace)
  const marked = child.execFileSync("sh", [
    "-c",
    `grep -lzxF -- "TEZT_CLOUD_NS=${namespace}" /proc/[0-9]*/environ 2>/dev/null | wc -l`
  ]).toString().trim()
  return { dir: fs.existsSync(dir), processes: Number(marked) }
}

describe.runIf(enabled)("ssh", () => {
  beforeAll(async () => {
    // Every namespace of this file uses keys generated under keyHome; the host accepts all of them.
    const namespaces = ["rc", "limit", "down", "big", "clean", "nothing", "breaker", "silent", "stuck"].map((s) =>
      `${base}-${s}`
    )
    const keys = await Promise.all(namespaces.map((n) => Effect.runPromise(SshKeys.ensure(n, undefined, keyHome))))
    publicKey = keys[0]!.publicKey
    host = await SshHosts.start({ authorizedKeys: keys.map((k) => k.publicKey) })
  })

  afterAll(async () => {
    await host?.stop()
    fs.rmSync(stateDir, { recursive: true, force: true })
  })

  runnerContract("ssh-host", Layer.unwrap(Effect.sync(() => backend(`${base}-rc`))), { timeout: 60_000 })

  it.live("the generated key is ed25519, mode 0600, with its .pub", () =>
    Effect.sync(() => {
      const file = SshKeys.defaultPath(`${base}-rc`, keyHome)
      assert.strictEqual(fs.statSync(file).mode & 0o777, 0o600)
      assert.match(publicKey, /^ssh-ed25519 /)
      assert.match(fs.readFileSync(`${file}.pub`, "utf8"), /^ssh-ed25519 /)
    }))

  it.live("--faketime skews the agent's clock", () =>
    Effect.scoped(Effect.gen(function*() {
      // --faketime (-10d) only adds variables to each command.
      const { agents } = yield* deploy(`${base}-limit`, ["a"], { faketime: "-10d" })
      yield* clockSkewChecks(agents[0]!, -10)
    })), 60_000)

  it.live(
    "200 concurrent commands on channels (no executor) beyond sshd's MaxSessions queue on 4 channels and all succeed",
    () =>
      Effect.gen(function*() {
        const key = yield* SshKeys.ensure(`${base}-limit`, undefined, keyHome)
        const connection = yield* SshClient.connect(
          { host: host!.host, port: host!.port, user: SshHosts.user },
          { privateKey: key.privateKey, hostKeys: { _tag: "Insecure" }, maxChannels: 4, executor: false }
        )
        // Each command counts, on the host, the commands running with it (a file each in a shared directory).
        const dir = `/tmp/tezt-cloud-channels-${process.pid}`
        yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
        let peakOpen = 0
        const out: Array<string> = []
        const results = yield* Effect.forEach(
          Array.from({ length: 200 }, (_, i) => i),
          (i) =>
            connection.exec(
              `mkdir -p ${dir} && touch ${dir}/${i} && n=$(ls ${dir} | wc -l) && sleep 0.05 && rm ${dir}/${i} && ` +
                `echo ${i} $n`,
              {
                onStdout: (chunk) => {
                  peakOpen = Math.max(peakOpen, connection.openChannels())
                  out[i] = (out[i] ?? "") + chunk.toString()
                },
                onStderr: () => {}
              }
            ),
          { concurrency: "unbounded" }
        )
        assert.deepStrictEqual(results.map((r) => r.code), Array.from({ length: 200 }, () => 0))
        assert.strictEqual(connection.executorPid(), undefined)
        const running = out.map((line, i) => {
          const [echoed, n] = line.trim().split(" ")
          assert.strictEqual(echoed, String(i))
          return Number(n)
        })
        assert.strictEqual(running.length, 200)
        // Never more than 4 at once on the host (sshd would take 10), nor channels open here.
        assert.isAtMost(Math.max(...running), 4)
        assert.isAtMost(peakOpen, 4)
      }).pipe(Effect.scoped),
    120_000
  )

  it.live(
    "a host whose sshd dies: a clear error within 10 s; sshd back: the next command reconnects",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const { agents } = yield* deploy(`${base}-down`, ["a"])
        const agent = agents[0]!
        assert.strictEqual(yield* agent.run("echo", ["up"]), "up\n")
        const running = yield* Effect.forkChild(agent.exec("sleep", ["30"]))
        yield* Effect.sleep("300 millis")
        yield* Effect.promise(() => host!.kill())
        const exit = yield* Fiber.await(running).pipe(Effect.timeout("10 seconds"))
        assert.isTrue(Exit.isFailure(exit))
        const failure = Exit.isFailure(exit) ? String(exit.cause) : ""
        assert.match(failure, /connection dropped|channel closed|down|ECONNRESET|refused/i)
        // While it is down, a command fails (fast, with the host named) instead of hanging.
        const down = yield* Effect.flip(agent.run("echo", ["x"])).pipe(Effect.timeout("10 seconds"))
        assert.include(down.message, `${SshHosts.user}@${host!.host}:${host!.port}`)
        yield* Effect.promise(() => host!.restart())
        // The breaker may still be open for a few seconds: retry until it lets the reconnect through.
        const reconnects = (yield* Metric.value(Telemetry.sshReconnects)).count
        let answer = ""
        for (let i = 0; i < 100 && answer === ""; i++) {
          answer = yield* agent.run("echo", ["back"]).pipe(Effect.catch(() => Effect.succeed("")))
          if (answer === "") yield* Effect.sleep("100 millis")
        }
        assert.strictEqual(answer, "back\n")
        // Counted in the tool's own metrics (`--open-telemetry`).
        assert.isAbove((yield* Metric.value(Telemetry.sshReconnects)).count, reconnects)
      })),
    60_000
  )

  it.live(
    "the circuit breaker: once the first attempts fail, calls fail at once with HostDown, with no new connect attempt",
    () =>
      Effect.gen(function*() {
        const { own, connection } = yield* ownHost("breaker", {}, {
          connectAttempts: 2,
          breakerCooldownMillis: 600_000,
          executor: false
        })
        assert.strictEqual((yield* connection.run("echo up")).stdout, "up\n")
        let started!: () => void
        const up = new Promise<void>((resolve) => (started = resolve))
        const running = yield* Effect.forkChild(connection.exec("echo started; exec sleep 600", {
          onStdout: () => started(),
          onStderr: () => {}
        }))
        yield* Effect.promise(() => up)
        // The host goes down; in its place, a listener that counts connection attempts and hangs up on each.
        yield* Effect.promise(() => own.kill())
        let attempts = 0
        const server = net.createServer((socket) => {
          attempts += 1
          socket.destroy()
        })
        yield* Effect.acquireRelease(
          Effect.callback<void>((resume) => void server.listen(own.port, own.host, () => resume(Effect.void))),
          () => Effect.callback<void>((resume) => void server.close(() => resume(Effect.void)))
        )
        // The command in flight fails once the connection has seen the drop (its 'close'): only then do calls go
        // to connecting again (before, ssh2 may throw "Not connected" while the socket closes).
        const inFlight = yield* Effect.flip(Fiber.join(running))
        assert.strictEqual(inFlight.reason._tag, "Disconnected", inFlight.message)
        const afterDrop = yield* Effect.flip(connection.run("echo x"))
        assert.strictEqual(afterDrop.reason._tag, "Unreachable", afterDrop.message)
        assert.strictEqual(attempts, 2)
        // The breaker is open: every call fails with HostDown, naming the host, and nothing reaches the port.
        for (let i = 0; i < 5; i++) {
          const error = yield* Effect.flip(connection.run("echo x"))
          assert.strictEqual(error.reason._tag, "HostDown", error.message)
          assert.include(error.message, `${SshHosts.user}@${own.host}:${own.port}`)
        }
        assert.strictEqual(attempts, 2)
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "a host that falls silent (its link cut: no reset) is detected by keepalives: the command fails, not hangs",
    () =>
      Effect.gen(function*() {
        const { own, connection } = yield* ownHost("silent", { netns: true }, {
          keepaliveMillis: 500,
          keepaliveCountMax: 3
        })
        let started!: () => void
        const running = new Promise<void>((resolve) => (started = resolve))
        const command = yield* Effect.forkChild(connection.exec("echo started; exec sleep 600", {
          onStdout: () => started(),
          onStderr: () => {}
        }))
        yield* Effect.promise(() => running)
        own.cut()
        // Keepalives give up after 3 × 0.5 s; TCP alone would wait for minutes. The bound is a safety net.
        const exit = yield* Fiber.await(command).pipe(Effect.timeout("30 seconds"))
        assert.isTrue(Exit.isFailure(exit))
        const failure = Exit.isFailure(exit) ? String(exit.cause) : ""
        assert.match(failure, /dropped|closed/i)
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "512 MiB of output streams through onLine with memory bounded far below it",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const { agents } = yield* deploy(`${base}-big`, ["a"])
        let lines = 0
        let bytes = 0
        const before = process.memoryUsage().rss
        let peak = before
        const result = yield* agents[0]!.exec("sh", [
          "-c",
          "yes 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890 | head -c 536870912"
        ], {
          onLine: (line) =>
            Effect.sync(() => {
              lines += 1
              bytes += line.line.length + 1
              if ((lines & 0xffff) === 0) peak = Math.max(peak, process.memoryUsage().rss)
            })
        })
        assert.strictEqual(result.exitCode, 0)
        // Every byte arrived: the lines plus their newlines, the last line (cut by head) having none.
        const total = 536870912
        assert.strictEqual(bytes, total + (total % 121 === 0 ? 0 : 1))
        // The result keeps only the tail; the process never held the output (it would have grown by all of it).
        assert.isAtMost(result.stdout.length, 16 * 1024 * 1024)
        assert.isBelow(peak - before, 256 * 1024 * 1024)
      })),
    180_000
  )

  it.live(
    "a run leaves nothing on the host: directory and processes are gone after teardown",
    () =>
      Effect.gen(function*() {
        const namespace = `${base}-nothing`
        yield* Effect.scoped(Effect.gen(function*() {
          const { agents } = yield* deploy(namespace, ["a", "b"])
          for (const agent of agents) yield* agent.spawn("sleeper", "sleep", ["300"])
          assert.deepStrictEqual(leftovers(namespace), { dir: true, processes: 2 })
        }))
        assert.deepStrictEqual(leftovers(namespace), { dir: false, processes: 0 })
      }),
    60_000
  )

  it.live(
    "40 agents torn down in batches: the one whose sandbox cannot be removed is reported, the others are gone",
    () =>
      Effect.gen(function*() {
        const namespace = `${base}-stuck`
        const failed: Array<string> = []
        const names = Array.from({ length: 40 }, (_, i) => `s${i}`)
        const root = path.join("/tmp", `tezt-cloud-${SshHosts.ensureUser()}`, namespace)
        yield* Effect.scoped(Effect.gen(function*() {
          const context = yield* Layer.build(backend(namespace, [(e) => {
            if (e.type === "teardown-failed") failed.push(e.step)
          }]))
          const config = Context.get(context, CloudConfig.CurrentConfig)
          const configs = AgentConfig.complete(names.map((name) => ({ name })), Orchestrator.agentDefaults(config))
          const agents = yield* Context.get(context, Deployment.Deployment).deploy(configs)
          for (const i of [3, 20, 39]) yield* agents[i]!.spawn("sleeper", "sleep", ["300"])
          assert.deepStrictEqual(leftovers(namespace), { dir: true, processes: 3 })
          // A root-owned directory in s7's sandbox: the test user cannot remove it.
          const stuck = path.join(root, "agents", "s7", "stuck")
          fs.mkdirSync(stuck)
          fs.writeFileSync(path.join(stuck, "file"), "")
        }))
        try {
          assert.strictEqual(leftovers(namespace).processes, 0)
          assert.deepStrictEqual(fs.readdirSync(path.join(root, "agents")), ["s7"])
          assert.include(failed, "agent s7")
          // The host's directory could not go either: reported, its record kept for `CLOUD clean up`.
          assert.isTrue(failed.some((step) => step.startsWith("host ")), failed.join(", "))
          assert.notInclude(failed, "agent s8")
          const outstanding = yield* Effect.provide(
            Effect.flatMap(Effect.service(Ledger.Ledger), (l) => l.outstanding),
            Ledger.Ledger.layer(stateDir, namespace)
          )
          assert.include(outstanding.map((r) => r.id), `ssh-sandbox:${SshHosts.user}@${host!.host}:${host!.port}:s7`)
          assert.notInclude(outstanding.map((r) => r.id), `ssh-sandbox:${SshHosts.user}@${host!.host}:${host!.port}:s8`)
        } finally {
          fs.rmSync(root, { recursive: true, force: true })
        }
      }),
    120_000
  )

  it.live(
    "a batch of control scripts cut short leaves its files in the run's directory, not in the host's /tmp",
    () =>
      Effect.gen(function*() {
        const { connection } = yield* ownHost("control", {}, {})
        const uid = SshHosts.ensureUser()
        const root = path.join("/tmp", `tezt-cloud-${uid}`, `${base}-control`)
        const ours = () =>
          new Set(
            fs.readdirSync("/tmp").filter((name) => {
              try {
                return fs.statSync(path.join("/tmp", name)).uid === uid
              } catch {
                return false
              }
            })
          )
        yield* connection.run(`mkdir -p ${SshClient.quote(root)}`)
        const before = ours()
        try {
          const control = SshHost.controlBatches(connection, 1, root)
          // The second script kills the batch's shell (`$$` in a subshell is the batch's shell) before it removes
          // its files, as a killed client or host would.
          yield* Effect.all([control.run("true"), control.run("sleep 0.2; kill -KILL $$")], {
            concurrency: "unbounded"
          })
          assert.deepStrictEqual([...ours()].filter((name) => !before.has(name)), [])
          // The batch's files are still there (its shell never removed them): inside the run's directory.
          assert.lengthOf(fs.readdirSync(root).filter((name) => name.startsWith(".control.")), 1)
        } finally {
          fs.rmSync(root, { recursive: true, force: true })
        }
      }).pipe(Effect.scoped),
    60_000
  )

  it.live("after the orchestrator dies, clean up removes what it left on the host", () =>
    Effect.gen(function*() {
      const namespace = `${base}-clean`
      // Deploy and start a daemon in a scope that is never closed: its finalizers never run, as after kill -9.
      const abandoned = yield* Scope.make()
      const { config } = yield* Effect.gen(function*() {
        const deployed = yield* deploy(namespace, ["a"])
        yield* deployed.agents[0]!.spawn("sleeper", "sleep", ["300"])
        return deployed
      }).pipe(Effect.provideService(Scope.Scope, abandoned))
      assert.deepStrictEqual(leftovers(namespace), { dir: true, processes: 1 })
      const cleaned = yield* SshHost.cleanUp(stateDir, config).pipe(
        Effect.provide(Ledger.Ledger.layer(stateDir, namespace))
      )
      assert.strictEqual(cleaned.length, 1)
      assert.deepStrictEqual(leftovers(namespace), { dir: false, processes: 0 })
      const outstanding = yield* Effect.provide(
        Effect.flatMap(Effect.service(Ledger.Ledger), (l) => l.outstanding),
        Ledger.Ledger.layer(stateDir, namespace)
      )
      assert.deepStrictEqual(outstanding.filter((r) => SshHost.kinds.includes(r.kind)), [])
    }), 60_000)

  it.live(
    "tezt-cloud BASIC simple health --ssh-host runs over ssh and leaves nothing on the host",
    () =>
      Effect.promise(async () => {
        const namespace = `${base}-cli`
        const home = path.join(stateDir, "cli-home")
        const key = await Effect.runPromise(SshKeys.ensure(namespace, undefined, home))
        const cliHost = await SshHosts.start({ authorizedKeys: [key.publicKey] })
        try {
          const result = child.spawnSync(process.execPath, [
            path.join(import.meta.dirname, "../../cli/src/bin.ts"),
            "BASIC",
            "simple",
            "health",
            "--ssh-host",
            `${SshHosts.user}@${cliHost.host}:${cliHost.port}`,
            "--tezt-cloud",
            namespace
          ], { env: { ...process.env, HOME: home, TEZT_CLOUD_STATE_DIR: stateDir }, encoding: "utf8" })
          assert.strictEqual(result.status, 0, result.stderr)
          assert.include(result.stdout, "Hello world from agent 0")
          assert.include(result.stdout, "Hello world from agent 1")
          assert.include(result.stdout, `over ssh`)
          assert.deepStrictEqual(leftovers(namespace), { dir: false, processes: 0 })
          // Trust on first use: the host's key is now recorded for the namespace.
          assert.include(
            fs.readFileSync(path.join(stateDir, namespace, "known_hosts"), "utf8"),
            `[127.0.0.1]:${cliHost.port} `
          )
        } finally {
          await cliHost.stop()
        }
      }),
    60_000
  )

  it.live("a host in its own network namespace is reached at its own address", () =>
    Effect.promise(async () => {
      const namespace = `${base}-netns`
      const key = await Effect.runPromise(SshKeys.ensure(namespace, undefined, keyHome))
      const nsHost = await SshHosts.start({ authorizedKeys: [key.publicKey], netns: true })
      try {
        const out = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
          const connection = yield* SshClient.connect(
            { host: nsHost.host, port: nsHost.port, user: SshHosts.user },
            { privateKey: key.privateKey, hostKeys: { _tag: "Insecure" } }
          )
          return yield* connection.run("ip -4 -o addr show scope global | awk '{print $4}'")
        })))
        assert.strictEqual(out.stdout.trim(), `${nsHost.host}/30`)
      } finally {
        await nsHost.stop()
      }
    }), 60_000)

  it.live("a changed host key is refused (trust on first use)", () =>
    Effect.gen(function*() {
      const key = yield* SshKeys.ensure(`${base}-rc`, undefined, keyHome)
      const knownHostsFile = path.join(stateDir, "tofu-known-hosts")
      const target = { host: host!.host, port: host!.port, user: SshHosts.user }
      const connectOnce = Effect.scoped(Effect.flatMap(
        SshClient.connect(target, {
          privateKey: key.privateKey,
          hostKeys: { _tag: "TrustOnFirstUse", knownHostsFile }
        }),
        (c) => c.run("true")
      ))
      yield* connectOnce
      yield* connectOnce
      fs.writeFileSync(
        knownHostsFile,
        `[${host!.host}]:${host!.port} AAAAC3NzaC1lZDI1NTE5AAAAIDifferentKeyxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n`
      )
      const error = yield* Effect.flip(connectOnce)
      assert.strictEqual(error.reason._tag, "HostKeyMismatch")
      assert.include(error.message, knownHostsFile)
    }))
})

/**
 * The run's directory, `${TMPDIR:-/tmp}/tezt-cloud-<uid>/<ns>`, on a host whose sessions get a `TMPDIR` of this
 * file's own (the shared `/tmp/tezt-cloud-<uid>` of the test account is left alone): whatever another user made
 * there first is refused, and nothing is created or run.
 */
describe.runIf(enabled)("ssh: the run's directory belongs to the user alone", () => {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-sshdir-"))
  const tmp = path.join(scratch, "tmp")
  const elsewhere = path.join(scratch, "elsewhere")
  const namespaces = { refused: `${base}-refused`, made: `${base}-private` }
  let dirHost: SshHosts.SshHost | undefined
  let uid = 0
  const userRoot = () => path.join(tmp, `tezt-cloud-${uid}`)
  const nobody = 65534

  beforeAll(async () => {
    uid = SshHosts.ensureUser()
    // Searchable by the test account; `tmp` is world-writable and sticky, like /tmp.
    fs.chmodSync(scratch, 0o755)
    fs.mkdirSync(tmp)
    fs.chmodSync(tmp, 0o1777)
    const keys = await Promise.all(
      Object.values(namespaces).map((n) => Effect.runPromise(SshKeys.ensure(n, undefined, keyHome)))
    )
    dirHost = await SshHosts.start({
      authorizedKeys: keys.map((k) => k.publicKey),
      extraConfig: [`SetEnv TMPDIR=${tmp}`]
    })
  })

  afterAll(async () => {
    await dirHost?.stop()
    fs.rmSync(scratch, { recursive: true, force: true })
  })

  /** A directory made by root (the other user here), with `mode` and `owner`. */
  const makeDir = (dir: string, mode: number, owner = 0) => {
    fs.mkdirSync(dir)
    fs.chmodSync(dir, mode)
    fs.chownSync(dir, owner, owner)
  }

  /** Every path under `dir` (the symbolic links not followed). */
  const walk = (dir: string): Array<string> =>
    fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
      const full = path.join(dir, e.name)
      return e.isDirectory() ? [full, ...walk(full)] : [full]
    })

  const cases: ReadonlyArray<{
    readonly name: string
    readonly plant: () => void
    /** The directory the error names, and what it says of it. */
    readonly refused: () => string
    readonly says: RegExp
  }> = [
    {
      name: "made first by another user, mode 0777",
      plant: () => makeDir(userRoot(), 0o777),
      refused: userRoot,
      says: /owned by uid 0 \(mode 777\), not by you/
    },
    {
      name: "the user's own but mode 0777 (anyone can plant a namespace in it)",
      plant: () => makeDir(userRoot(), 0o777, uid),
      refused: userRoot,
      says: /mode 777 lets other users write in it/
    },
    {
      name: "a symbolic link to a directory of the user's",
      plant: () => {
        makeDir(elsewhere, 0o700, uid)
        fs.symlinkSync(elsewhere, userRoot())
      },
      refused: userRoot,
      says: /symbolic link \(to .*elsewhere\)/
    },
    {
      name: "the namespace's directory made by another user in it",
      plant: () => {
        makeDir(userRoot(), 0o700, uid)
        makeDir(path.join(userRoot(), namespaces.refused), 0o777, nobody)
      },
      refused: () => path.join(userRoot(), namespaces.refused),
      says: new RegExp(`owned by uid ${nobody} \\(mode 777\\)`)
    }
  ]

  for (const c of cases) {
    it.live(`refused when it is ${c.name}; nothing is created or run there`, () =>
      Effect.gen(function*() {
        fs.rmSync(userRoot(), { recursive: true, force: true })
        fs.rmSync(elsewhere, { recursive: true, force: true })
        c.plant()
        const before = walk(scratch)
        const error = yield* Effect.flip(Effect.scoped(deploy(namespaces.refused, ["a"], {}, dirHost)))
        assert.include(error.message, `refused ${c.refused()}: `)
        assert.match(error.message, c.says)
        assert.include(error.message, "remove it (as its owner, or root)")
        assert.notInclude(error.message, "\n")
        // Nothing made on the host, no process of the namespace, and no ledger record for clean-up to act on.
        assert.deepStrictEqual(walk(scratch), before)
        assert.strictEqual(leftovers(namespaces.refused).processes, 0)
        const outstanding = yield* Effect.provide(
          Effect.flatMap(Effect.service(Ledger.Ledger), (l) => l.outstanding),
          Ledger.Ledger.layer(stateDir, namespaces.refused)
        )
        assert.deepStrictEqual(outstanding, [])
      }), 60_000)
  }

  it.live(
    "made mode 0700, or made 0700 when an older version left it readable by others",
    () =>
      Effect.gen(function*() {
        const mode = (dir: string) => fs.statSync(dir).mode & 0o7777
        for (const left of [undefined, 0o755]) {
          fs.rmSync(userRoot(), { recursive: true, force: true })
          fs.rmSync(elsewhere, { recursive: true, force: true })
          if (left !== undefined) makeDir(userRoot(), left, uid)
          yield* Effect.scoped(Effect.gen(function*() {
            const { agents } = yield* deploy(namespaces.made, ["a"], {}, dirHost)
            assert.strictEqual(yield* agents[0]!.run("echo", ["ok"]), "ok\n")
            for (const dir of [userRoot(), path.join(userRoot(), namespaces.made)]) {
              assert.strictEqual(mode(dir), 0o700, dir)
              assert.strictEqual(fs.statSync(dir).uid, uid, dir)
            }
          }))
        }
      }),
    60_000
  )
})
