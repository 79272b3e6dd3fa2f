/**
 * The contract every backend's `Runner` (and the `Agent` built on it) must pass: exec semantics (exit code, exact
 * output, argv, env, streamed lines, pid), process-tree kills on interruption, scoped daemons, Tezt cloud's copy
 * rule (md5 comparison, memoized copies) and its port allocation (a range per agent). A backend's test calls
 * `runnerContract(name, layer)` with a layer that provides its `Deployment` and the `CurrentConfig` it was built
 * from; nothing here knows which backend runs. `BackendContract.ts` runs it over every backend of the CLI's list.
 *
 * **Details**
 *
 * Every test uses one deployment of three agents, made by the first test that runs (in any order) and torn down
 * (its whole scope: agents, daemons, records) after the last: a deployment is most of a test's time on Docker, ssh
 * and GCP, and none of these tests needs a fresh agent. The exec, run, spawn and copy tests use the first agent
 * (each uses names and paths of its own, and kills what it starts); the ports tests look at the three agents'
 * ranges and take the ports of the second and third (`nextAvailablePort` hands each port out once, so the first
 * agent keeps its own for whatever else runs there). Everything on the agent is observed through the
 * agent itself (`exec` of `sh`, `cat`, `stat`, `/proc`), never through this machine's filesystem: the same checks
 * hold on localhost, over ssh and in containers. The agent needs a POSIX `sh`, `setsid`, `stat -c` and `/proc`.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Agent, CloudConfig, CloudError, Deployment, Orchestrator, Scenario } from "@tezt-cloud/core"
import { Cause, Context, Effect, Exit, Fiber, Layer, Scope } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

export interface ContractOptions {
  /**
   * Where agent `i`'s port range starts: `"per-index"` (`vm_base_port + i * ports_per_vm`, agents sharing one
   * host: localhost, docker, ssh-host) or `"shared"` (`vm_base_port` for every agent, one VM each). Default
   * `"per-index"`.
   */
  readonly portLayout?: "per-index" | "shared" | undefined
  /** Per-test timeout in milliseconds (default 30 s). */
  readonly timeout?: number | undefined
}

/** What the suite needs from a backend: its deployment, and the configuration it deploys with. */
export type ContractLayer<E> = Layer.Layer<Deployment.Deployment | CloudConfig.CurrentConfig, E>

/**
 * The sh snippet the suite uses to tell which of the pids given as arguments still run on the agent (zombies
 * count as gone: an orphan's reaper may be slow, or absent in a container).
 */
const aliveScript = `for p; do
  s=$(sed -n 's/^State:[[:space:]]*//p' "/proc/$p/status" 2>/dev/null)
  case "$s" in ""|Z*|X*) ;; *) echo "$p" ;; esac
done`

/** Arguments that a shell string would mangle; each must reach the program byte for byte. */
export const trickyArgs: ReadonlyArray<string> = [
  "two words",
  "it's",
  "\"double\"",
  "$HOME",
  "${PATH}",
  "`id`",
  "$(id)",
  "back\\slash",
  "\\n",
  "line1\nline2",
  "tab\there",
  "ünïcødé ✓ 日本",
  "",
  "*",
  "-n",
  "--",
  ";",
  "&& echo injected",
  "  leading and trailing  "
]

/** Runs a bounded poll: `check` every 50 ms, at most `attempts` times, then fails the test naming `what`. */
export const eventually = <E, R>(what: string, check: Effect.Effect<boolean, E, R>, attempts = 200) =>
  Effect.gen(function*() {
    for (let i = 0; i < attempts; i++) {
      if (yield* check) return
      yield* Effect.sleep("50 millis")
    }
    return assert.fail(`gave up waiting until ${what}`)
  })

/** The pids among `pids` still running on the agent. */
export const alivePids = (agent: Agent.Agent, pids: ReadonlyArray<number>) =>
  agent.run("sh", ["-c", aliveScript, "sh", ...pids.map(String)]).pipe(
    Effect.map((out) => out.split("\n").filter((l) => l !== "").map(Number))
  )

/** Collects `pid <n>` lines (from `onLine`) into `into`. */
const pidCollector = (into: Array<number>) => ({ line }: { readonly line: string }) =>
  Effect.sync(() => {
    const match = /^pid (\d+)$/.exec(line)
    if (match !== null) into.push(Number(match[1]))
  })

/** `sh -c` text of a tree three levels deep: `sh` → `sh` → `sleep` (plus a `setsid` one), printing every pid. */
const treeScript = [
  "echo \"pid $$\"",
  "sh -c 'echo \"pid $$\"; sleep 300 & echo \"pid $!\"; setsid sleep 300 & echo \"pid $!\"; sleep 300' &",
  "wait"
].join("\n")
const treePids = 4

/** A local temp dir, removed when the test's scope closes. */
const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "runner-contract-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

const writeFile = (file: string, content: string, mode = 0o644) => {
  fs.mkdirSync(path.dirname(file), { recursive: true })
  fs.writeFileSync(file, content)
  fs.chmodSync(file, mode)
  return file
}

/** The suite. Call it at the top level of a backend's test file. */
export const runnerContract = <E>(name: string, layer: ContractLayer<E>, options: ContractOptions = {}) => {
  const timeout = options.timeout ?? 30_000
  const portLayout = options.portLayout ?? "per-index"
  let deployments = 0

  /** Builds the backend in the test's scope and deploys `count` fresh agents in it. */
  const deploy = (count: number) =>
    Effect.gen(function*() {
      const context = yield* Layer.build(layer)
      const deployment = Context.get(context, Deployment.Deployment)
      const config = Context.get(context, CloudConfig.CurrentConfig)
      const prefix = `rc${deployments++}`
      const scenario = Scenario.make({
        title: "runner contract",
        tags: [],
        vms: Array.from({ length: count }, (_, i) => ({ name: `${prefix}-${i}` })),
        run: Effect.void
      })
      const configs = yield* Orchestrator.agentConfigs(scenario, config)
      const agents = yield* deployment.deploy(configs)
      return { agents, config }
    })
  // The suite's deployment: made once, in a scope of the suite's, by whatever test asks first; closed after the
  // last (a teardown that dies fails the suite).
  const scope = Scope.makeUnsafe()
  const fleet = Effect.runSync(Effect.cached(deploy(3).pipe(Scope.provide(scope))))
  const deployOne = Effect.map(fleet, ({ agents }) => agents[0]!)
  const closeFleet = () => Effect.runPromise(Scope.close(scope, Exit.void))

  describe(`Runner contract: ${name}`, () => {
    afterAll(closeFleet, timeout)
    describe("exec", () => {
      it.live(
        "returns the exit code, stdout and stderr separately, and the pid the command had",
        () =>
          Effect.gen(function*() {
            const agent = yield* deployOne
            const result = yield* agent.exec("sh", ["-c", "echo \"$$\"; echo out; echo err >&2"])
            assert.strictEqual(result.exitCode, 0)
            const [pid, out] = result.stdout.split("\n")
            assert.strictEqual(out, "out")
            assert.strictEqual(result.stderr, "err\n")
            assert.isAbove(result.pid, 0)
            assert.strictEqual(result.pid, Number(pid))
          }),
        timeout
      )

      it.live("a non-zero exit is a result, not an error", () =>
        Effect.gen(function*() {
          const agent = yield* deployOne
          const result = yield* agent.exec("sh", ["-c", "echo partial; echo failing >&2; exit 42"])
          assert.strictEqual(result.exitCode, 42)
          assert.strictEqual(result.stdout, "partial\n")
          assert.strictEqual(result.stderr, "failing\n")
        }), timeout)

      it.live("passes every argument unchanged (no shell in between)", () =>
        Effect.gen(function*() {
          const agent = yield* deployOne
          const result = yield* agent.exec("sh", ["-c", "for a; do printf '[%s]' \"$a\"; done", "sh", ...trickyArgs])
          assert.strictEqual(result.exitCode, 0)
          assert.strictEqual(result.stdout, trickyArgs.map((a) => `[${a}]`).join(""))
          const nul = yield* agent.exec("sh", ["-c", "printf '%s\\0' \"$@\"", "sh", ...trickyArgs])
          assert.deepStrictEqual(nul.stdout.split("\0").slice(0, -1), [...trickyArgs])
        }), timeout)

      it.live(
        "returns the output exactly: no newline added, carriage returns and blank lines kept",
        () =>
          Effect.gen(function*() {
            const agent = yield* deployOne
            const noNewline = yield* agent.exec("printf", ["%s", "no newline"])
            assert.strictEqual(noNewline.stdout, "no newline")
            const mixed = yield* agent.exec("printf", ["a\\r\\nb\\n\\n\\nc\\rd\\n"])
            assert.strictEqual(mixed.stdout, "a\r\nb\n\n\nc\rd\n")
            const empty = yield* agent.exec("true", [])
            assert.strictEqual(empty.stdout, "")
            assert.strictEqual(empty.stderr, "")
          }),
        timeout
      )

      it.live(
        "a line longer than 1 MiB reaches onLine in pieces of at most 1 MiB that join back to it",
        () =>
          Effect.gen(function*() {
            const agent = yield* deployOne
            const lines: Array<string> = []
            const result = yield* agent.exec("sh", ["-c", "head -c 2500000 /dev/zero | tr '\\0' x; echo; echo next"], {
              onLine: ({ line, stream }) => Effect.sync(() => void (stream === "stdout" && lines.push(line)))
            })
            assert.strictEqual(result.exitCode, 0)
            assert.deepStrictEqual(lines.map((l) => l.length), [1048576, 1048576, 402848, 4])
            assert.strictEqual(lines.slice(0, 3).join(""), "x".repeat(2_500_000))
          }),
        timeout
      )

      it.live("hands every output line to onLine, in order, tagged with its stream", () =>
        Effect.gen(function*() {
          const agent = yield* deployOne
          const lines: Array<{ readonly stream: string; readonly line: string }> = []
          const result = yield* agent.exec(
            "sh",
            ["-c", "i=0; while [ $i -lt 500 ]; do echo \"out $i\"; echo \"err $i\" >&2; i=$((i+1)); done; printf last"],
            { onLine: (line) => Effect.sync(() => void lines.push(line)) }
          )
          const expected = Array.from({ length: 500 }, (_, i) => `out ${i}`)
          assert.deepStrictEqual(lines.filter((l) => l.stream === "stdout").map((l) => l.line), [...expected, "last"])
          assert.deepStrictEqual(
            lines.filter((l) => l.stream === "stderr").map((l) => l.line),
            expected.map((l) => l.replace("out", "err"))
          )
          assert.strictEqual(result.stdout, expected.map((l) => l + "\n").join("") + "last")
        }), timeout)

      it.live("sets the env option's variables, keeping the agent's own", () =>
        Effect.gen(function*() {
          const agent = yield* deployOne
          const value = "a b $HOME 'q' ü"
          const result = yield* agent.exec("sh", ["-c", "printf '%s|%s' \"$CONTRACT_VAR\" \"$EMPTY_VAR\""], {
            env: { CONTRACT_VAR: value, EMPTY_VAR: "" }
          })
          assert.strictEqual(result.stdout, `${value}|`)
          const unset = yield* agent.exec("sh", ["-c", "printf '%s' \"${CONTRACT_VAR-unset}\""])
          assert.strictEqual(unset.stdout, "unset", "env does not leak into the next command")
        }), timeout)

      it.live("a relative cwd is relative to the agent's home", () =>
        Effect.gen(function*() {
          const agent = yield* deployOne
          const home = yield* agent.run("sh", ["-c", "printf '%s' \"$HOME\""])
          yield* agent.run("mkdir", ["-p", path.posix.join(home, "contract-cwd", "sub")])
          const pwd = yield* agent.run("sh", ["-c", "pwd -P"], { cwd: "contract-cwd/sub" })
          const expected = yield* agent.run("sh", ["-c", "cd \"$HOME/contract-cwd/sub\" && pwd -P"])
          assert.strictEqual(pwd, expected)
        }), timeout)

      it.live("runs concurrent commands independently", () =>
        Effect.gen(function*() {
          const agent = yield* deployOne
          const results = yield* Effect.forEach(
            Array.from({ length: 8 }, (_, i) => i),
            (i) => agent.exec("sh", ["-c", `sleep 0.$((${i} % 3)); echo "job ${i}"; exit ${i}`]),
            { concurrency: "unbounded" }
          )
          results.forEach((r, i) => {
            assert.strictEqual(r.stdout, `job ${i}\n`)
            assert.strictEqual(r.exitCode, i)
          })
          assert.strictEqual(new Set(results.map((r) => r.pid)).size, results.length)
        }), timeout)

      it.live("a missing program is an exit code 127 or a CommandFailed, never a defect", () =>
        Effect.gen(function*() {
          const agent = yield* deployOne
          const exit = yield* agent.exec("tezt-cloud-contract-no-such-program", ["x"]).pipe(Effect.exit)
          if (exit._tag === "Success") {
            assert.strictEqual(exit.value.exitCode, 127)
          } else {
            const error = Cause.squash(exit.cause)
            assert.instanceOf(error, CloudError.CloudError)
            assert.strictEqual((error as CloudError.CloudError).reason._tag, "CommandFailed")
          }
        }), timeout)

      it.live("interrupting an exec kills its whole process tree", () =>
        Effect.gen(function*() {
          const agent = yield* deployOne
          const pids: Array<number> = []
          const fiber = yield* agent.exec("sh", ["-c", treeScript], { onLine: pidCollector(pids) }).pipe(
            Effect.forkChild
          )
          yield* eventually("the tree printed its pids", Effect.sync(() => pids.length === treePids))
          assert.lengthOf(yield* alivePids(agent, pids), treePids, "the tree runs before the interruption")
          yield* Fiber.interrupt(fiber)
          yield* eventually(
            `the tree (${pids.join(", ")}) is gone`,
            alivePids(agent, pids).pipe(Effect.map((alive) => alive.length === 0))
          )
        }), timeout)

      it.live("a timed-out exec kills its process tree too", () =>
        Effect.gen(function*() {
          const agent = yield* deployOne
          const pids: Array<number> = []
          // The timeout runs from the moment the tree is up, however long the backend takes to start it.
          const up = eventually("the tree printed its pids", Effect.sync(() => pids.length === treePids))
          const error = yield* agent.exec("sh", ["-c", treeScript], { onLine: pidCollector(pids) }).pipe(
            Effect.raceFirst(up.pipe(Effect.andThen(Effect.timeout(Effect.never, "500 millis")))),
            Effect.flip
          )
          assert.isTrue(Cause.isTimeoutError(error))
          assert.lengthOf(pids, treePids, "the tree printed its pids before the timeout")
          yield* eventually(
            `the tree (${pids.join(", ")}) is gone`,
            alivePids(agent, pids).pipe(Effect.map((alive) => alive.length === 0))
          )
        }), timeout)
    })

    describe("run", () => {
      it.live("returns stdout on success", () =>
        Effect.gen(function*() {
          const agent = yield* deployOne
          assert.strictEqual(yield* agent.run("echo", ["Hello world"]), "Hello world\n")
        }), timeout)

      it.live("fails with reason NonZeroExit, carrying the exit code and stderr", () =>
        Effect.gen(function*() {
          const agent = yield* deployOne
          const error = yield* agent.run("sh", ["-c", "echo oops >&2; exit 3"]).pipe(Effect.flip)
          assert.strictEqual(error.reason._tag, "NonZeroExit")
          if (error.reason._tag !== "NonZeroExit") return
          assert.strictEqual(error.reason.exitCode, 3)
          assert.strictEqual(error.reason.agent, agent.name)
          assert.include(error.reason.stderr, "oops")
          assert.include(error.message, "exited with code 3")
        }), timeout)
    })

    describe("spawn", () => {
      it.live(
        "returns while the daemon runs, logs its output, and closing its scope kills its tree",
        () =>
          Effect.gen(function*() {
            const agent = yield* deployOne
            const script =
              "echo to-stderr >&2; sleep 300 & echo \"pid $!\"; setsid sleep 300 & echo \"pid $!\"; exec sleep 300"
            const started = yield* Effect.scoped(Effect.gen(function*() {
              const daemon = yield* agent.spawn("sleeper", "sh", ["-c", script])
              assert.strictEqual(daemon.name, "sleeper")
              assert.strictEqual(daemon.agent, agent.name)
              assert.isAbove(daemon.pid, 0)
              assert.isTrue(yield* daemon.isRunning)
              let log = ""
              yield* eventually(
                "the daemon's output reaches its log file",
                agent.run("cat", [daemon.logFile]).pipe(
                  Effect.map((text) => {
                    log = text
                    return text.includes("to-stderr") && (text.match(/^pid \d+$/gm) ?? []).length === 2
                  })
                )
              )
              const pids = [...log.matchAll(/^pid (\d+)$/gm)].map((m) => Number(m[1]))
              assert.lengthOf(yield* alivePids(agent, pids), 2)
              assert.isTrue(yield* daemon.isRunning, "still running after a while")
              return { daemon, pids }
            }))
            yield* eventually(
              "the daemon's tree is gone once its scope closed",
              alivePids(agent, [started.daemon.pid, ...started.pids]).pipe(Effect.map((alive) => alive.length === 0))
            )
            yield* eventually(
              "isRunning turns false",
              started.daemon.isRunning.pipe(Effect.map((running) => !running))
            )
            // Its log was fetched into the agent's artifacts when its scope closed.
            const saved = fs.readFileSync(path.join(agent.artifactsDir, "daemons", "sleeper.log"), "utf8")
            assert.include(saved, "to-stderr")
            assert.lengthOf(saved.match(/^pid \d+$/gm) ?? [], 2)
          }),
        timeout
      )

      it.live("a program that cannot start fails spawn with why, and starts no daemon", () =>
        Effect.gen(function*() {
          const agent = yield* deployOne
          const missing = yield* Effect.scoped(agent.spawn("missing", "tezt-cloud-no-such-program", ["x"])).pipe(
            Effect.flip
          )
          assert.strictEqual(missing.reason._tag, "CommandFailed")
          assert.include(missing.message, "cannot start: tezt-cloud-no-such-program is not found on the agent's PATH")
          const notFile = yield* Effect.scoped(agent.spawn("no-file", "/nonexistent/tezt-cloud-program", [])).pipe(
            Effect.flip
          )
          assert.include(notFile.message, "cannot start: /nonexistent/tezt-cloud-program is not an executable file")
        }), timeout)

      it.live("passes the daemon's arguments and env unchanged", () =>
        Effect.gen(function*() {
          const agent = yield* deployOne
          const daemon = yield* agent.spawn(
            "args",
            "sh",
            [
              "-c",
              "for a; do printf '[%s]' \"$a\"; done; printf '{%s}' \"$DAEMON_VAR\"; exec sleep 300",
              "sh",
              ...trickyArgs
            ],
            { env: { DAEMON_VAR: "x y" } }
          )
          assert.strictEqual((yield* agent.exec("test", ["-f", daemon.logFile])).exitCode, 0, "the log exists at once")
          const expected = trickyArgs.map((a) => `[${a}]`).join("") + "{x y}"
          yield* eventually(
            "the daemon printed its arguments",
            agent.run("cat", [daemon.logFile]).pipe(Effect.map((log) => log === expected))
          )
        }), timeout)

      it.live("stop kills its whole tree now, and is idempotent", () =>
        Effect.gen(function*() {
          const agent = yield* deployOne
          const daemon = yield* agent.spawn("stopped", "sh", [
            "-c",
            "setsid sleep 300 & echo \"pid $!\"; exec sleep 300"
          ])
          assert.isTrue(yield* daemon.isRunning)
          let child = 0
          yield* eventually(
            "the daemon logged its child's pid",
            agent.run("cat", [daemon.logFile]).pipe(Effect.map((log) => {
              child = Number(/^pid (\d+)$/m.exec(log)?.[1] ?? 0)
              return child > 0
            }))
          )
          assert.lengthOf(yield* alivePids(agent, [daemon.pid, child]), 2)
          yield* daemon.stop
          yield* daemon.stop
          yield* eventually("isRunning turns false", daemon.isRunning.pipe(Effect.map((running) => !running)))
          yield* eventually(
            "the daemon and its setsid child are gone",
            alivePids(agent, [daemon.pid, child]).pipe(Effect.map((alive) => alive.length === 0))
          )
        }), timeout)

      it.live(
        "a daemon that exits on its own is not running, and its scope still closes cleanly",
        () =>
          Effect.gen(function*() {
            const agent = yield* deployOne
            yield* Effect.scoped(Effect.gen(function*() {
              const daemon = yield* agent.spawn("short", "sh", ["-c", "echo bye"])
              yield* eventually("isRunning turns false", daemon.isRunning.pipe(Effect.map((running) => !running)))
              yield* eventually(
                "its output is in the log",
                agent.run("cat", [daemon.logFile]).pipe(Effect.map((log) => log === "bye\n"))
              )
            }))
          }),
        timeout
      )
    })

    describe("copy", () => {
      it.live(
        "an absolute path means one file to copy, exec and spawn: the one copy wrote there",
        () =>
          Effect.gen(function*() {
            const agent = yield* deployOne
            const text = "#!/bin/sh\necho \"abs $1\"\n"
            const local = writeFile(path.join(yield* tempDir, "abs-hello.sh"), text, 0o755)
            const dir = `/tmp/tezt-cloud-contract-${agent.name}`
            yield* agent.copy(local, { destination: `${dir}/abs-hello.sh` })
            assert.strictEqual(yield* agent.run("ls", [dir]), "abs-hello.sh\n")
            assert.strictEqual(yield* agent.run("cat", [`${dir}/abs-hello.sh`]), text)
            assert.strictEqual(yield* agent.run(`${dir}/abs-hello.sh`, ["exec"]), "abs exec\n")
            yield* Effect.scoped(Effect.gen(function*() {
              const daemon = yield* agent.spawn("abs", `${dir}/abs-hello.sh`, ["spawn"])
              yield* eventually(
                "the copied program ran as a daemon",
                agent.run("cat", [daemon.logFile]).pipe(Effect.map((log) => log === "abs spawn\n"))
              )
            }))
            // A path the agent was not given is the machine's.
            assert.strictEqual((yield* agent.exec("test", ["-x", "/bin/sh"])).exitCode, 0)
          }),
        timeout
      )

      it.live("copies to the binaries path, keeping the executable mode", () =>
        Effect.gen(function*() {
          const agent = yield* deployOne
          const local = writeFile(path.join(yield* tempDir, "hello.sh"), "#!/bin/sh\necho \"hello $1\"\n", 0o755)
          const remote = yield* agent.copy(local)
          assert.isTrue(
            remote.endsWith(path.posix.join(agent.config.binariesPath, "hello.sh")),
            `${remote} is under ${agent.config.binariesPath}`
          )
          assert.strictEqual(yield* agent.run(remote, ["world"]), "hello world\n")
          assert.strictEqual(yield* agent.run("stat", ["-c", "%a", remote]), "755\n")
        }), timeout)

      it.live("a second copy of the same file is memoized", () =>
        Effect.gen(function*() {
          const agent = yield* deployOne
          const local = writeFile(path.join(yield* tempDir, "memo.txt"), "original\n")
          const remote = yield* agent.copy(local)
          yield* agent.run("sh", ["-c", "echo tampered > \"$1\"", "sh", remote])
          // Even with the consistency check on, a destination this agent already copied to is not looked at.
          assert.strictEqual(yield* agent.copy(local, { consistencyCheck: true }), remote)
          assert.strictEqual(yield* agent.run("cat", [remote]), "tampered\n")
        }), timeout)

      it.live("refresh copies again, with the local file's new content", () =>
        Effect.gen(function*() {
          const agent = yield* deployOne
          const local = writeFile(path.join(yield* tempDir, "refresh.sh"), "#!/bin/sh\necho v1\n", 0o755)
          const remote = yield* agent.copy(local)
          assert.strictEqual(yield* agent.run(remote, []), "v1\n")
          writeFile(local, "#!/bin/sh\necho v2\n", 0o755)
          assert.strictEqual(yield* agent.copy(local), remote)
          assert.strictEqual(yield* agent.run(remote, []), "v1\n", "without refresh the copy is memoized")
          assert.strictEqual(yield* agent.copy(local, { refresh: true }), remote)
          assert.strictEqual(yield* agent.run(remote, []), "v2\n")
        }), timeout)

      it.live(
        "a file already on the agent: re-copied when it differs and the check is on, kept when off",
        () =>
          Effect.gen(function*() {
            const agent = yield* deployOne
            const dir = yield* tempDir
            // Learn where the binaries path is on the agent, then plant files there behind the copier's back.
            const anchor = yield* agent.copy(writeFile(path.join(dir, "anchor.txt"), "anchor\n"))
            const remoteDir = path.posix.dirname(anchor)
            const plant = (file: string, content: string, mode: string) =>
              agent.run("sh", ["-c", "printf '%s' \"$2\" > \"$1\" && chmod \"$3\" \"$1\"", "sh", file, content, mode])

            yield* plant(path.posix.join(remoteDir, "checked.txt"), "old\n", "644")
            const checked = yield* agent.copy(writeFile(path.join(dir, "checked.txt"), "new\n"), {
              consistencyCheck: true
            })
            assert.strictEqual(yield* agent.run("cat", [checked]), "new\n")

            yield* plant(path.posix.join(remoteDir, "unchecked.txt"), "old\n", "644")
            const unchecked = yield* agent.copy(writeFile(path.join(dir, "unchecked.txt"), "new\n"), {
              consistencyCheck: false
            })
            assert.strictEqual(yield* agent.run("cat", [unchecked]), "old\n", "check off: warn and keep")

            // Same content: skipped, so the planted file's mode (not the local one's) survives.
            yield* plant(path.posix.join(remoteDir, "same.txt"), "same\n", "600")
            const same = yield* agent.copy(writeFile(path.join(dir, "same.txt"), "same\n", 0o644), {
              consistencyCheck: true
            })
            assert.strictEqual(
              yield* agent.run("stat", ["-c", "%a", same]),
              "600\n",
              "an identical file is not rewritten"
            )
          }),
        timeout
      )

      it.live(
        "copies a directory recursively; fetch brings it back (binary content, modes; links skipped)",
        () =>
          Effect.gen(function*() {
            const agent = yield* deployOne
            const dir = path.join(yield* tempDir, "tree")
            writeFile(path.join(dir, "a.txt"), "A\n")
            writeFile(path.join(dir, "sub", "b.txt"), "B\n")
            writeFile(path.join(dir, "sub", "deeper", "run.sh"), "#!/bin/sh\necho deep\n", 0o755)
            // A link to a file is copied as that file, as `scp -r` does.
            fs.symlinkSync(path.join("..", "a.txt"), path.join(dir, "sub", "link.txt"))
            const remote = yield* agent.copy(dir)
            assert.isTrue(remote.endsWith(path.posix.join(agent.config.binariesPath, "tree")))
            const listing = yield* agent.run("sh", ["-c", "cd \"$1\" && find . -type f | sort", "sh", remote])
            assert.strictEqual(listing, "./a.txt\n./sub/b.txt\n./sub/deeper/run.sh\n./sub/link.txt\n")
            assert.strictEqual(yield* agent.run("cat", [path.posix.join(remote, "sub", "b.txt")]), "B\n")
            assert.strictEqual(yield* agent.run("cat", [path.posix.join(remote, "sub", "link.txt")]), "A\n")
            assert.strictEqual(yield* agent.run(path.posix.join(remote, "sub", "deeper", "run.sh"), []), "deep\n")
            yield* agent.run("sh", [
              "-c",
              "printf 'B\\0\\377' >\"$1/sub/b.bin\" && ln -s a.txt \"$1/link\"",
              "sh",
              remote
            ])
            const back = yield* agent.fetch(remote, path.join(dir, "..", "back"))
            assert.strictEqual(fs.readFileSync(path.join(back, "sub", "link.txt"), "utf8"), "A\n")
            assert.deepStrictEqual([...fs.readFileSync(path.join(back, "sub", "b.bin"))], [66, 0, 255])
            assert.strictEqual(fs.statSync(path.join(back, "sub", "deeper", "run.sh")).mode & 0o111, 0o111)
            assert.isFalse(fs.existsSync(path.join(back, "link")), "links are not fetched")
          }),
        timeout
      )

      it.live("honours an explicit destination, creating its parents", () =>
        Effect.gen(function*() {
          const agent = yield* deployOne
          const local = writeFile(path.join(yield* tempDir, "conf.json"), "{}\n")
          const destination = `/tmp/tezt-cloud-contract-${Math.random().toString(36).slice(2)}/nested/dir/conf.json`
          const remote = yield* agent.copy(local, { destination })
          assert.isTrue(remote.endsWith(destination), `${remote} ends with ${destination}`)
          assert.strictEqual(yield* agent.run("cat", [remote]), "{}\n")
          // The same absolute path, fetched: by default into the agent's artifacts, under its basename.
          const fetched = yield* agent.fetch(destination)
          assert.strictEqual(fetched, path.join(agent.artifactsDir, "conf.json"))
          assert.strictEqual(fs.readFileSync(fetched, "utf8"), "{}\n")
        }), timeout)

      it.live("a missing local file is a CopyFailed; so is fetching a missing file", () =>
        Effect.gen(function*() {
          const agent = yield* deployOne
          const error = yield* agent.copy(path.join(yield* tempDir, "absent")).pipe(Effect.flip)
          assert.strictEqual(error.reason._tag, "CopyFailed")
          const missing = yield* agent.fetch("no/such/file").pipe(Effect.flip)
          assert.strictEqual(missing.reason._tag, "CopyFailed")
          assert.include(missing.message, "no such file or directory")
        }), timeout)
    })

    describe("ports", () => {
      it.live("agents come in configuration order with their port ranges", () =>
        Effect.gen(function*() {
          const { agents, config } = yield* fleet
          assert.lengthOf(agents, 3)
          agents.forEach((agent, i) => {
            assert.strictEqual(agent.index, i)
            assert.isTrue(agent.name.endsWith(`-${i}`))
            const start = portLayout === "per-index" ? config.vmBasePort + i * config.portsPerVm : config.vmBasePort
            assert.deepStrictEqual(agent.ports, { start, end: start + config.portsPerVm - 1 })
          })
        }), timeout)

      it.live(
        "nextAvailablePort is strictly increasing from ports.start + 1 and fails once exhausted",
        () =>
          Effect.gen(function*() {
            const { agents } = yield* fleet
            const [, first, second] = agents as [Agent.Agent, Agent.Agent, Agent.Agent]
            const taken: Array<number> = []
            for (let i = 0; i < first.ports.end - first.ports.start; i++) taken.push(yield* first.nextAvailablePort)
            assert.deepStrictEqual(
              taken,
              Array.from({ length: first.ports.end - first.ports.start }, (_, i) => first.ports.start + 1 + i)
            )
            const error = yield* first.nextAvailablePort.pipe(Effect.flip)
            assert.strictEqual(error.reason._tag, "AgentsInvalid")
            assert.strictEqual(yield* second.nextAvailablePort, second.ports.start + 1, "each agent counts its own")
          }),
        timeout
      )
    })
  })
}
