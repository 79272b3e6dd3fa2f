import * as NodeServices from "@effect/platform-node/NodeServices"
import { afterAll, assert, describe, it } from "@effect/vitest"
import {
  type Agent,
  AgentConfig,
  Artifacts,
  Cloud,
  CloudConfig,
  Deployment,
  Ledger,
  LogRotation,
  Orchestrator,
  RunEvents,
  Scenario,
  TestCloud
} from "@tezt-cloud/core"
import { Context, Effect, Fiber, Layer } from "effect"
import { ChildProcess, ChildProcessSpawner } from "effect/process"
import * as childProcess from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as BackendLayer from "../../../test/fixtures/BackendLayer.ts"
import * as Integration from "../../../test/fixtures/Integration.ts"
import * as Ports from "../../../test/fixtures/Ports.ts"
import { reportOf, running } from "../../core/test/contract/BackendContract.ts"
import { clockSkewChecks } from "../../core/test/contract/ClockSkew.ts"
import { eventually, runnerContract } from "../../core/test/contract/RunnerContract.ts"
import { LocalExecutor, Localhost } from "../src/index.ts"
import * as ProcessTree from "../src/internal/processTree.ts"

/** This file's agent ports (see `Ports.ts`). */
const ports = Ports.take(3000)

const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "localhost-test-"))
const base = `lt-${process.pid}-${Math.random().toString(36).slice(2, 8)}`
const namespaces: Array<string> = []
const ns = (suffix: string) => {
  const namespace = `${base}-${suffix}`
  namespaces.push(namespace)
  return namespace
}

afterAll(() => {
  // A safety net: a failed test must not leave sleeps behind.
  for (const namespace of namespaces) Localhost.forceKillSync(namespace)
  fs.rmSync(stateDir, { recursive: true, force: true })
})

/** The localhost backend of namespace `namespace`, with its ledger and events (sent to `sinks`) visible. */
const backend = (
  namespace: string,
  sinks: ReadonlyArray<RunEvents.Sink> = [],
  input: CloudConfig.Input = {},
  executor?: LocalExecutor.Program
) =>
  BackendLayer.layer({
    stateDir,
    namespace,
    sinks,
    input: { vm_base_port: ports, ports_per_vm: 10, ...input },
    deployment: (config) =>
      Localhost.layer({
        stateDir,
        config,
        artifactsDir: path.join(stateDir, "artifacts", namespace),
        killGrace: "1 second",
        executor
      })
  })

/**
 * The native executor (built by the bootstrap when `cc` is there): required in CI, where `.ci/run` installs the
 * compiler; the Perl one runs the same contract.
 */
const nativeBuilt = LocalExecutor.native() !== undefined
if (!nativeBuilt) {
  Integration.unavailable(
    "the native local executor",
    `${LocalExecutor.nativePath} is missing or older than its source (scripts/bootstrap.sh builds it with cc)`
  )
}

describe.runIf(nativeBuilt)("with the native executor", () => {
  runnerContract("localhost (native executor)", backend(ns("rc"), [], {}, "native"))
})
runnerContract("localhost (Perl executor)", backend(ns("rcp"), [], {}, "perl"))

/** Builds the backend in the current scope and deploys agents called `names`. */
const deploy = (
  namespace: string,
  names: ReadonlyArray<string>,
  sinks: ReadonlyArray<RunEvents.Sink> = [],
  input: CloudConfig.Input = {}
) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(backend(namespace, sinks, input))
    const config = Context.get(context, CloudConfig.CurrentConfig)
    // Straight to the backend, past the orchestrator's own name checks: the backend must defend itself too.
    const configs = AgentConfig.complete(names.map((name) => ({ name })), Orchestrator.agentDefaults(config))
    const agents = yield* Context.get(context, Deployment.Deployment).deploy(configs)
    return { agents, ledger: Context.get(context, Ledger.Ledger) }
  })

const cleanUp = (namespace: string) =>
  Localhost.cleanUp(stateDir, namespace).pipe(Effect.provide(Ledger.Ledger.layer(stateDir, namespace)))

const outstanding = (namespace: string) =>
  Effect.gen(function*() {
    return yield* (yield* Ledger.Ledger).outstanding
  }).pipe(Effect.provide(Ledger.Ledger.layer(stateDir, namespace)))

const allGone = (what: string, pids: ReadonlyArray<number>) =>
  eventually(`${what} (${pids.join(", ")}) are gone`, Effect.sync(() => pids.every((pid) => !running(pid))))

/** Pids printed as `pid <n>` lines in a daemon's log. */
const loggedPids = (logFile: string, count: number) =>
  Effect.gen(function*() {
    let pids: Array<number> = []
    yield* eventually(
      `${logFile} lists ${count} pids`,
      Effect.sync(() => {
        const log = fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8") : ""
        pids = [...log.matchAll(/^pid (\d+)$/gm)].map((m) => Number(m[1]))
        return pids.length >= count
      })
    )
    return pids
  })

const homeOf = (agent: Agent.Agent) => agent.run("sh", ["-c", "printf '%s' \"$HOME\""])

/**
 * Makes a file that `rm -rf` cannot remove: a read-only directory for a normal user; for root (who ignores
 * modes), `chattr +i`. Why not, when neither works here (e.g. root on tmpfs).
 */
interface Pinning {
  readonly pin: (dir: string) => void
  readonly unpin: (dir: string) => void
}
const pinner = (): Pinning | string => {
  const candidates = process.getuid?.() === 0
    ? {
      pin: (dir: string) => {
        writeStuck(dir)
        childProcess.execFileSync("chattr", ["+i", path.join(dir, "stuck", "file")], { stdio: "ignore" })
      },
      unpin: (dir: string) => {
        const file = path.join(dir, "stuck", "file")
        if (fs.existsSync(file)) childProcess.execFileSync("chattr", ["-i", file], { stdio: "ignore" })
      }
    }
    : {
      pin: (dir: string) => {
        writeStuck(dir)
        fs.chmodSync(path.join(dir, "stuck"), 0o500)
      },
      unpin: (dir: string) => {
        if (fs.existsSync(path.join(dir, "stuck"))) fs.chmodSync(path.join(dir, "stuck"), 0o700)
      }
    }
  const probe = fs.mkdtempSync(path.join(stateDir, "probe-"))
  try {
    candidates.pin(probe)
    let removable = true
    try {
      fs.rmSync(probe, { recursive: true, force: true })
    } catch {
      removable = false
    }
    if (!removable) candidates.unpin(probe)
    fs.rmSync(probe, { recursive: true, force: true })
    return removable ? `a pinned directory was removed all the same under ${stateDir}` : candidates
  } catch (error) {
    return `pinning failed: ${String(error)}`
  }
}
const writeStuck = (dir: string) => {
  fs.mkdirSync(path.join(dir, "stuck"), { recursive: true })
  fs.writeFileSync(path.join(dir, "stuck", "file"), "")
}
const probed = pinner()
/** How to pin a sandbox; undefined (its test skipped, a failure under TEZT_CLOUD_IT=require) when none works here. */
const pinning = typeof probed === "string"
  ? Integration.unavailable("the failed-teardown test (a sandbox rm -rf cannot remove)", probed)
  : probed

/** Starts a `sleep` without the exec marker, in its own session, and prints its pid once it is there. */
const leftoverScript = `env -u TEZT_CLOUD_EXEC setsid sleep 300 >/dev/null 2>&1 </dev/null &
p=$!
i=0
while [ "$(cat /proc/$p/comm 2>/dev/null)" != sleep ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i+1)); done
echo $p`

/** A stand-in orchestrator: deploys two agents with a daemon each (one escaping by setsid), then waits. */
const crashingOrchestrator = `
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Deployment, Ledger, Orchestrator, RunEvents, Scenario, TestCloud } from "@tezt-cloud/core"
import { Localhost } from "@tezt-cloud/localhost"
import { Effect, Layer } from "effect"
const [stateDir, namespace] = process.argv.slice(1)
const program = Effect.gen(function*() {
  const config = yield* TestCloud.config({ tezt_cloud: namespace, vm_base_port: ${ports + 1000}, ports_per_vm: 10 })
  const layer = Localhost.layer({ stateDir, config, artifactsDir: stateDir + "/artifacts/" + namespace }).pipe(
    Layer.provide([Ledger.Ledger.layer(stateDir, namespace), RunEvents.RunEvents.layerNoop, NodeServices.layer])
  )
  const scenario = Scenario.make({ title: "crash", tags: [], vms: [{ name: "c0" }, { name: "c1" }], run: Effect.void })
  const configs = yield* Orchestrator.agentConfigs(scenario, config)
  yield* Effect.gen(function*() {
    const agents = yield* (yield* Deployment.Deployment).deploy(configs)
    const daemons = []
    for (const agent of agents) {
      daemons.push(yield* agent.spawn("d", "sh", ["-c", "setsid sleep 300 & exec sleep 300"]))
    }
    console.log(JSON.stringify({ pids: daemons.map((d) => d.pid), logs: daemons.map((d) => d.logFile) }))
    yield* Effect.never
  }).pipe(Effect.provide(layer))
})
Effect.runFork(Effect.scoped(program))
`

describe("a scenario's test swaps TestCloud for this backend", () => {
  const hello = Scenario.make({
    title: "hello",
    tags: [],
    vms: [{ name: "a" }],
    run: Effect.gen(function*() {
      const cloud = yield* Cloud.Cloud
      const said = yield* (yield* cloud.agent("a")).run("echo", ["hello", "from", "a"])
      yield* Effect.logInfo(said.trim())
      yield* cloud.pushMetric({ name: "hellos_total", value: 1, type: "counter" })
    })
  })
  /** One test body, for whichever layer provides Cloud. */
  const body = Effect.gen(function*() {
    yield* hello.run
    const recording = yield* TestCloud.Recording
    assert.include(recording.logs, "hello from a")
    assert.deepStrictEqual(yield* recording.metrics, [{ name: "hellos_total", value: 1, type: "counter" }])
  })

  it.effect("on TestCloud", () => body.pipe(Effect.provide(TestCloud.layer({ scenario: hello }))))

  it.live("for real, on process sandboxes", () => {
    const namespace = ns("swap")
    return body.pipe(Effect.provide(TestCloud.layerOn(
      (config) =>
        Localhost.layer({ stateDir, config, artifactsDir: path.join(stateDir, "artifacts", namespace) }).pipe(
          Layer.provide([Ledger.Ledger.layer(stateDir, namespace), RunEvents.RunEvents.layerNoop, NodeServices.layer])
        ),
      { scenario: hello, config: { tezt_cloud: namespace, vm_base_port: ports + 2000 } }
    )))
  })
})

describe("Localhost", () => {
  it.live("the sandbox lives as long as the scope; closing it kills every process, escaped ones included", () =>
    Effect.gen(function*() {
      const namespace = ns("box")
      const run = yield* Effect.scoped(Effect.gen(function*() {
        const { agents } = yield* deploy(namespace, ["box"])
        const agent = agents[0]!
        const home = yield* homeOf(agent)
        assert.strictEqual(home, path.join(Localhost.sandboxesDir(stateDir, namespace), "box"))
        assert.isTrue(fs.statSync(home).isDirectory())
        // A daemon's grandchild that left by `setsid` and a double fork: no process group, no parent.
        const daemon = yield* agent.spawn("escaper", "sh", [
          "-c",
          "setsid sh -c 'sleep 300 & echo \"pid $!\"'; exec sleep 300"
        ])
        const [escaped] = yield* loggedPids(daemon.logFile, 1)
        // An exec's leftover that dropped its exec marker: only the agent's marker still finds it. The command
        // waits until the leftover is `sleep` (marker gone, own session), or the exec's end could still catch it.
        const leftover = Number(yield* agent.run("sh", ["-c", leftoverScript]))
        const pids = [daemon.pid, escaped!, leftover]
        assert.isTrue(pids.every(running), "all run before the scope closes")
        assert.includeMembers(ProcessTree.findMarked("TEZT_CLOUD_NS", namespace), pids)
        return { home, pids }
      }))
      assert.isFalse(fs.existsSync(run.home), "the sandbox is removed")
      yield* allGone("the agent's processes", run.pids)
      assert.deepStrictEqual(ProcessTree.findMarked("TEZT_CLOUD_NS", namespace), [])
    }))

  it.live("--faketime skews the clock of every command and daemon; agent.setFaketime moves it (libfaketime)", () =>
    Effect.gen(function*() {
      const { agents } = yield* deploy(ns("faketime"), ["t"], [], { faketime: "-10d" })
      yield* clockSkewChecks(agents[0]!, -10)
    }))

  it.live("log rotation: a running daemon's log is copied and truncated, it writes on, N copies are kept", () =>
    Effect.gen(function*() {
      const { agents } = yield* deploy(ns("rotate"), ["r"])
      const agent = agents[0]!
      const daemon = yield* agent.spawn("counter", "sh", [
        "-c",
        "i=0; while :; do i=$((i+1)); echo $i; sleep 0.02; done"
      ])
      assert.deepStrictEqual(yield* agent.daemonLogs, [daemon.logFile])
      const numbers = (file: string) =>
        fs.existsSync(file) ? fs.readFileSync(file, "utf8").split("\n").filter((l) => l !== "").map(Number) : []
      for (let round = 0; round < 3; round++) {
        yield* eventually("the daemon wrote", Effect.sync(() => numbers(daemon.logFile).length >= 2))
        yield* LogRotation.rotate(agent, 2)
      }
      yield* eventually(
        "the daemon writes on into its truncated log",
        Effect.sync(() => numbers(daemon.logFile).length > 0)
      )
      const [current, one, two] = [daemon.logFile, `${daemon.logFile}.1`, `${daemon.logFile}.2`].map(numbers)
      assert.isFalse(fs.existsSync(`${daemon.logFile}.3`), "only 2 copies are kept")
      assert.isAbove(two!.length, 0)
      assert.isAbove(one!.length, 0)
      assert.isBelow(two!.at(-1)!, one![0]!, "the older copy holds the older lines")
      assert.isBelow(one!.at(-1)!, current![0]!, "the log holds the newest lines, from where the copy ends")
    }))

  it.live(
    "a daemon printing without end: its saved log is its capped tail after a marker; --daily-logs-artifacts fetches its log dir whole",
    () =>
      Effect.gen(function*() {
        const cap = 64 * 1024
        // The agent is torn down before the files are read: they are kept here.
        const artifactsDir = yield* Effect.scoped(Effect.gen(function*() {
          const agent = (yield* deploy(ns("chatty"), ["c"])).agents[0]!
          // Its step runs last: once the daemon is down.
          yield* Artifacts.fetchDailyLogs([agent])
          const daemon = yield* agent.spawn("chatty", "sh", [
            "-c",
            "i=0; while :; do i=$((i+1)); echo \"line $i\"; done"
          ])
          const size = () => fs.existsSync(daemon.logFile) ? fs.statSync(daemon.logFile).size : 0
          yield* eventually("the daemon wrote more than 4 caps", Effect.sync(() => size() > 4 * cap))
          yield* LogRotation.rotate(agent, 1)
          yield* eventually("it writes on, past the cap again", Effect.sync(() => size() > 2 * cap))
          return agent.artifactsDir
        })).pipe(Effect.provideService(Artifacts.CurrentPolicy, { daemonLogBytes: cap }))
        const saved = fs.readFileSync(path.join(artifactsDir, "daemons", "chatty.log"), "utf8")
        const [marker, ...rest] = saved.split("\n")
        assert.match(marker!, new RegExp(`^\\[tezt-cloud: \\d+ earlier bytes dropped, the last ${cap} kept\\]$`))
        assert.strictEqual(Buffer.byteLength(rest.join("\n")), cap)
        assert.match(rest.at(-2)!, /^line \d+$/, "the newest lines are kept")
        const daily = path.join(artifactsDir, "daily-logs", "logs")
        assert.sameMembers(fs.readdirSync(daily), ["chatty.log", "chatty.log.1"])
        assert.isAbove(fs.statSync(path.join(daily, "chatty.log.1")).size, 4 * cap, "daily logs come whole")
      })
  )

  it.live("an exec's background leftovers die with it", () =>
    Effect.gen(function*() {
      const { agents } = yield* deploy(ns("leftover"), ["l"])
      const pid = Number(yield* agents[0]!.run("sh", ["-c", "sleep 300 >/dev/null 2>&1 & echo $!"]))
      yield* allGone("the exec's background sleep", [pid])
    }))

  it.live(
    "a command is forked by the deployment's executor, not by the orchestrator; a fan-out by a pool of them",
    () =>
      Effect.gen(function*() {
        const { agents } = yield* deploy(ns("executor"), ["e"])
        const parent = yield* agents[0]!.run("sh", ["-c", "tr '\\0' ' ' </proc/$PPID/cmdline"])
        assert.include(parent, "tezt-cloud-executor")
        // 100 commands at once, each holding until all run: spread over ceil(100 / 32) processes or more, none
        // running more than 32 (a fork copies the forking process's descriptors: two per command it runs).
        const dir = fs.mkdtempSync(path.join(stateDir, "pool-"))
        const hold = `echo $PPID; : >"${dir}/$$"; while [ ! -e "${dir}/go" ]; do sleep 0.05; done`
        const parents = yield* Effect.forEach(
          Array.from({ length: 100 }, () => agents[0]!.run("sh", ["-c", hold])),
          (run) => run,
          { concurrency: "unbounded" }
        ).pipe(Effect.forkChild)
        yield* eventually("the 100 commands run", Effect.sync(() => fs.readdirSync(dir).length >= 100), 600)
        fs.writeFileSync(path.join(dir, "go"), "")
        const counts = new Map<string, number>()
        for (const ppid of yield* Fiber.join(parents)) counts.set(ppid.trim(), (counts.get(ppid.trim()) ?? 0) + 1)
        assert.isAtLeast(counts.size, 4, JSON.stringify([...counts]))
        assert.isAtMost(Math.max(...counts.values()), 32, JSON.stringify([...counts]))
      }),
    60_000
  )

  it.live("daemons that ignore SIGTERM stop together: the grace period is waited once, not once per daemon", () =>
    Effect.gen(function*() {
      const dir = fs.mkdtempSync(path.join(stateDir, "stubborn-"))
      // Each daemon writes its pid, and on SIGTERM (which it ignores) notes which of the others are still alive.
      const stubborn = (name: string) =>
        `echo $$ > ${dir}/${name}.pid; trap 'alive=""; for f in ${dir}/*.pid; do ` +
        `[ "$f" = ${dir}/${name}.pid ] || ! kill -0 "$(cat "$f")" 2>/dev/null || alive="$alive x"; done; ` +
        `echo "${name}:$alive" >> ${dir}/terms' TERM; while :; do sleep 0.1; done`
      yield* Effect.scoped(Effect.gen(function*() {
        const { agents } = yield* deploy(ns("stubborn"), ["s"])
        for (const name of ["a", "b", "c"]) yield* agents[0]!.spawn(name, "sh", ["-c", stubborn(name)])
        yield* eventually("the daemons wrote their pids", Effect.sync(() => fs.readdirSync(dir).length === 3))
      }))
      // A daemon may be told more than once (its process tree, then the process itself): its first word counts.
      const lines = fs.readFileSync(path.join(dir, "terms"), "utf8").trim().split("\n")
      const first = ["a", "b", "c"].map((name) => lines.find((line) => line.startsWith(`${name}:`)))
      // One after another, each would be killed before the next is told: the last told would see no other alive.
      assert.deepStrictEqual(first, ["a: x x", "b: x x", "c: x x"], lines.join("\n"))
    }))

  it.live("a clean close leaves no outstanding ledger entry, and the events tell the story", () =>
    Effect.gen(function*() {
      const namespace = ns("ledger")
      const events: Array<RunEvents.Stamped> = []
      yield* Effect.scoped(Effect.gen(function*() {
        const { agents, ledger } = yield* deploy(namespace, ["l0", "l1"], [(e) => void events.push(e)])
        yield* agents[0]!.run("echo", ["hi"])
        yield* agents[1]!.spawn("d", "sleep", ["300"])
        const live = yield* ledger.outstanding
        assert.sameMembers(live.filter((r) => r.kind === "sandbox").map((r) => r.id), ["sandbox:l0", "sandbox:l1"])
        assert.lengthOf(live.filter((r) => r.kind === "process"), 1, "the daemon is recorded")
      }))
      assert.deepStrictEqual(yield* outstanding(namespace), [])
      const entries = yield* Ledger.read(path.join(stateDir, namespace, "ledger.jsonl"))
      assert.isAtLeast(entries.filter((e) => e.op === "acquire").length, 4, "two sandboxes, an exec, a daemon")
      const types = events.map((e) => e.type)
      for (const type of ["agent-ready", "exec", "output", "exit", "daemon-up", "daemon-down", "agent-down"]) {
        assert.include(types, type)
      }
      assert.isBelow(types.indexOf("daemon-down"), types.indexOf("agent-down"), "daemons go before their agent")
      assert.deepStrictEqual(
        events.flatMap((e) => e.type === "output" ? [e.line] : []),
        ["hi"]
      )
    }))

  it.live("refuses an agent name that is not a single path segment, before touching the disk", () =>
    Effect.gen(function*() {
      const namespace = ns("names")
      const canaries = [path.join(stateDir, namespace, "canary"), path.join(stateDir, "canary")]
      for (const canary of canaries) fs.mkdirSync(canary, { recursive: true })
      for (const name of ["..", "../..", "../../..", "a/b", "."]) {
        const error = yield* Effect.scoped(deploy(namespace, [name])).pipe(Effect.flip)
        assert.strictEqual(error.reason._tag, "DeployFailed", name)
        assert.include(error.message, "localhost/process", "the error names the backend")
      }
      assert.isTrue(canaries.every((canary) => fs.existsSync(canary)), "nothing above the sandboxes was removed")
    }))

  it.live("copies land in the sandbox: absolute paths under its fs/, the binaries dir first on PATH", () =>
    Effect.gen(function*() {
      const { agents } = yield* deploy(ns("copy"), ["c"])
      const agent = agents[0]!
      const home = yield* homeOf(agent)
      const name = `tool-${base}`
      const local = path.join(fs.mkdtempSync(path.join(stateDir, "src-")), name)
      fs.writeFileSync(local, "#!/bin/sh\necho \"tool $*\"\n", { mode: 0o755 })
      const remote = yield* agent.copy(local)
      assert.strictEqual(remote, path.join(home, "fs", agent.config.binariesPath, name))
      assert.isFalse(fs.existsSync(path.join(agent.config.binariesPath, name)), "the real path is untouched")
      assert.strictEqual(yield* agent.run(name, ["by", "name"]), "tool by name\n")
    }))

  it.live("an agent inherits what a program needs of the orchestrator's environment, never its secrets", () =>
    Effect.gen(function*() {
      const secrets = {
        TEZT_CLOUD_GRAFANA_TOKEN: `canary-grafana-${base}`,
        TEZT_CLOUD_AUTH_PASSWORD: `canary-password-${base}`,
        TEZTCLOUD_SLACK_BOT_TOKEN: `canary-slack-${base}`
      }
      const before = { ...process.env }
      Object.assign(process.env, secrets)
      // The environment is read when the backend's layer is built: the deployment sees the canaries.
      const env = yield* Effect.gen(function*() {
        const { agents } = yield* deploy(ns("env"), ["e"])
        return yield* agents[0]!.run("env", [])
      }).pipe(Effect.ensuring(Effect.sync(() => {
        for (const name of Object.keys(secrets)) delete process.env[name]
        Object.assign(process.env, before)
      })))
      for (const value of Object.values(secrets)) assert.notInclude(env, value)
      assert.match(env, /^PATH=/m)
      assert.match(env, /^TEZT_CLOUD_AGENT=/m)
    }))

  it.live("a copy onto a directory is a CopyFailed, not a defect", () =>
    Effect.gen(function*() {
      const { agents } = yield* deploy(ns("copydir"), ["c"])
      const agent = agents[0]!
      const dir = fs.mkdtempSync(path.join(stateDir, "src-"))
      fs.writeFileSync(path.join(dir, "anchor"), "")
      const anchor = yield* agent.copy(path.join(dir, "anchor"))
      fs.mkdirSync(path.join(path.dirname(anchor), "taken"))
      fs.writeFileSync(path.join(dir, "taken"), "file\n")
      const error = yield* agent.copy(path.join(dir, "taken")).pipe(Effect.flip)
      assert.strictEqual(error.reason._tag, "CopyFailed")
    }))

  it.live("a failed copy keeps the error under it (its errno code), out of its one line", () =>
    Effect.gen(function*() {
      const { agents } = yield* deploy(ns("copycause"), ["c"])
      const agent = agents[0]!
      const dir = fs.mkdtempSync(path.join(stateDir, "src-"))
      const missing = path.join(dir, "missing")
      const absent = yield* agent.copy(missing).pipe(Effect.flip)
      assert.strictEqual(absent.message, `agent c: copy of ${missing} failed: no such local file or directory`)
      assert.strictEqual((absent.cause as NodeJS.ErrnoException).code, "ENOENT")
      fs.writeFileSync(path.join(dir, "anchor"), "")
      const anchor = yield* agent.copy(path.join(dir, "anchor"))
      fs.mkdirSync(path.join(path.dirname(anchor), "taken"))
      fs.writeFileSync(path.join(dir, "taken"), "file\n")
      const onDirectory = yield* agent.copy(path.join(dir, "taken")).pipe(Effect.flip)
      const cause = onDirectory.cause as NodeJS.ErrnoException
      assert.strictEqual(cause.code, "EISDIR")
      // The md5 of what is there already fails: the copy names the destination.
      const remote = path.posix.join(agent.config.binariesPath, "taken")
      assert.strictEqual(onDirectory.message, `agent c: copy of ${remote} failed: ${cause.message}`)
    }))

  it.live.skipIf(pinning === undefined)(
    "one agent's failed teardown is reported, keeps its ledger record, and does not stop the others",
    () =>
      Effect.gen(function*() {
        const namespace = ns("fail")
        const events: Array<RunEvents.Stamped> = []
        const run = yield* Effect.scoped(Effect.gen(function*() {
          const { agents } = yield* deploy(namespace, ["t0", "t1", "t2"], [(e) => void events.push(e)])
          const daemons = yield* Effect.forEach(agents, (agent) => agent.spawn("d", "sleep", ["300"]))
          const homes = yield* Effect.forEach(agents, homeOf)
          pinning!.pin(homes[1]!)
          return { homes, pids: daemons.map((d) => d.pid) }
        }))
        // In case an assertion fails first: an immutable file would outlive the test's temp dir.
        yield* Effect.addFinalizer(() => Effect.sync(() => pinning!.unpin(run.homes[1]!)))
        yield* allGone("every agent's daemon", run.pids)
        assert.isFalse(fs.existsSync(run.homes[0]!))
        assert.isTrue(fs.existsSync(run.homes[1]!), "the pinned sandbox stays")
        assert.isFalse(fs.existsSync(run.homes[2]!))
        const failed = events.flatMap((e) => e.type === "teardown-failed" ? [e.step] : [])
        assert.deepStrictEqual(failed, ["agent t1"])
        assert.sameMembers(events.flatMap((e) => e.type === "agent-down" ? [e.agent] : []), ["t0", "t2"])
        assert.deepStrictEqual((yield* outstanding(namespace)).map((r) => r.id), ["sandbox:t1"])

        pinning!.unpin(run.homes[1]!)
        const removed = yield* cleanUp(namespace)
        assert.include(removed.sandboxes, run.homes[1]!)
        assert.isFalse(fs.existsSync(run.homes[1]!))
        assert.deepStrictEqual(yield* outstanding(namespace), [])
      })
  )

  it.live("cleanUp after a kill -9 of the orchestrator kills the marked processes and removes the sandboxes", () =>
    Effect.gen(function*() {
      const namespace = ns("crash")
      const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
      const orchestrator = yield* spawner.spawn(ChildProcess.make(
        process.execPath,
        ["--input-type=module", "--no-warnings", "-e", crashingOrchestrator, stateDir, namespace],
        { cwd: fileURLToPath(new URL("..", import.meta.url)), stdin: "ignore", stderr: "inherit" }
      ))
      const { logs, pids: daemons } = yield* reportOf<{
        readonly pids: ReadonlyArray<number>
        readonly logs: ReadonlyArray<string>
      }>(orchestrator, "the orchestrator reported its daemons")
      process.kill(orchestrator.pid, "SIGKILL")
      yield* eventually("the orchestrator is dead", Effect.sync(() => !running(orchestrator.pid)))

      let marked: Array<number> = []
      yield* eventually(
        "two daemons and their setsid children run",
        Effect.sync(() => (marked = ProcessTree.findMarked("TEZT_CLOUD_NS", namespace)).length >= 4)
      )
      assert.includeMembers(marked, [...daemons], "the daemons outlived their orchestrator")
      const sandboxes = logs.map((log) => path.dirname(path.dirname(log)))
      assert.isTrue(sandboxes.every((dir) => fs.existsSync(dir)))
      assert.sameMembers(
        (yield* outstanding(namespace)).filter((r) => r.kind === "sandbox").map((r) => r.id),
        ["sandbox:c0", "sandbox:c1"]
      )

      const removed = yield* cleanUp(namespace)
      assert.isAtLeast(removed.processes, 4)
      assert.sameMembers([...removed.sandboxes], sandboxes)
      yield* allGone("the crashed run's processes", marked)
      assert.deepStrictEqual(ProcessTree.findMarked("TEZT_CLOUD_NS", namespace), [])
      assert.isTrue(sandboxes.every((dir) => !fs.existsSync(dir)))
      assert.deepStrictEqual(yield* outstanding(namespace), [])
    }).pipe(Effect.provide(NodeServices.layer)))

  it.live("cleanUp refuses to remove a recorded path outside the namespace's sandboxes, and keeps its record", () =>
    Effect.gen(function*() {
      const namespace = ns("victim")
      const victim = fs.mkdtempSync(path.join(stateDir, "victim-"))
      fs.writeFileSync(path.join(victim, "precious"), "keep me")
      const escaping = path.join(Localhost.sandboxesDir(stateDir, namespace), "..", "..", path.basename(victim))
      yield* Effect.gen(function*() {
        const ledger = yield* Ledger.Ledger
        yield* ledger.acquire({ id: "sandbox:outside", kind: "sandbox", data: { agent: "x", path: victim } })
        yield* ledger.acquire({ id: "sandbox:escaping", kind: "sandbox", data: { agent: "y", path: escaping } })
      }).pipe(Effect.provide(Ledger.Ledger.layer(stateDir, namespace)))
      const error = yield* Effect.flip(cleanUp(namespace))
      assert.include(error.message, "not inside")
      assert.strictEqual(fs.readFileSync(path.join(victim, "precious"), "utf8"), "keep me")
      assert.includeMembers((yield* outstanding(namespace)).map((r) => r.id), ["sandbox:outside"])
    }))

  it.live("cleanUp of namespace a never touches namespace ab", () =>
    Effect.gen(function*() {
      const a = ns("a")
      const ab = ns("ab")
      const inA = yield* deploy(a, ["x"])
      const inAb = yield* deploy(ab, ["x"])
      const daemonA = yield* inA.agents[0]!.spawn("d", "sleep", ["300"])
      const daemonAb = yield* inAb.agents[0]!.spawn("d", "sleep", ["300"])
      const homeA = yield* homeOf(inA.agents[0]!)
      const homeAb = yield* homeOf(inAb.agents[0]!)
      const outstandingAb = yield* outstanding(ab)

      const removed = yield* cleanUp(a)
      assert.deepStrictEqual([...removed.sandboxes], [homeA])
      yield* allGone("namespace a's daemon", [daemonA.pid])
      assert.isFalse(fs.existsSync(homeA))

      assert.isTrue(running(daemonAb.pid), "namespace ab's daemon still runs")
      assert.isTrue(yield* daemonAb.isRunning)
      assert.isTrue(fs.existsSync(homeAb))
      assert.deepStrictEqual(yield* outstanding(ab), outstandingAb)
      assert.strictEqual(yield* inAb.agents[0]!.run("echo", ["still here"]), "still here\n")
    }))

  it.live("forceKillSync kills the namespace's processes at once", () =>
    Effect.gen(function*() {
      const namespace = ns("force")
      const { agents } = yield* deploy(namespace, ["f0", "f1"])
      const daemons = yield* Effect.forEach(
        agents,
        (agent) => agent.spawn("d", "sh", ["-c", "setsid sleep 300 & exec sleep 300"])
      )
      yield* eventually(
        "the daemons and their setsid children run",
        Effect.sync(() => ProcessTree.findMarked("TEZT_CLOUD_NS", namespace).length >= 4)
      )
      const killed = Localhost.forceKillSync(namespace)
      assert.isAtLeast(killed, daemons.length)
      assert.isTrue(daemons.every((d) => !running(d.pid)))
      assert.deepStrictEqual(ProcessTree.findMarked("TEZT_CLOUD_NS", namespace), [])
      assert.strictEqual(Localhost.forceKillSync(namespace), 0, "nothing left the second time")
    }))
})
