/**
 * End-to-end tests of the real `tezt-cloud` executable: a child `node packages/cli/src/bin.ts` with its own state
 * dir, real process sandboxes, real signals. What is checked is what a user sees: exit codes, output, and that
 * nothing of the run is left on the machine.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { findMarked } from "../packages/localhost/src/internal/processTree.ts"

const root = path.resolve(import.meta.dirname, "..")
const bin = path.join(root, "packages/cli/src/bin.ts")
const fixtures = path.join(root, "test/fixtures/SignalScenarios.ts")

interface Cli {
  readonly proc: child.ChildProcess
  readonly stdout: () => string
  readonly stderr: () => string
  readonly exit: Promise<number | null>
  readonly waitFor: (text: string) => Promise<void>
}

const start = (args: ReadonlyArray<string>, env: Record<string, string> = {}): Cli => {
  let out = ""
  let err = ""
  const proc = child.spawn(process.execPath, [bin, ...args], {
    cwd: root,
    env: { ...process.env, TEZT_CLOUD_SCENARIOS: fixtures, ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  proc.stdout.on("data", (d: Buffer) => (out += d.toString()))
  proc.stderr.on("data", (d: Buffer) => (err += d.toString()))
  const exit = new Promise<number | null>((resolve) => proc.on("exit", (code) => resolve(code)))
  const waitFor = (text: string) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (out.includes(text)) return resolve()
        if (proc.exitCode !== null) return reject(new Error(`exited before "${text}":\n${out}\n${err}`))
        setTimeout(check, 20)
      }
      check()
    })
  return { proc, stdout: () => out, stderr: () => err, exit, waitFor }
}

/** A fresh state dir and namespace per test, so runs never see each other. */
const fresh = () => {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-cli-"))
  const namespace = `cli-${Math.random().toString(36).slice(2, 8)}`
  return { stateDir, namespace, env: { TEZT_CLOUD_STATE_DIR: stateDir } }
}

/** Waits (bounded) until no process carries the namespace's marker. */
const noProcessLeft = async (namespace: string) => {
  for (let i = 0; i < 200 && findMarked("TEZT_CLOUD_NS", namespace).length > 0; i++) {
    await new Promise((r) => setTimeout(r, 25))
  }
  return findMarked("TEZT_CLOUD_NS", namespace)
}

const sandboxes = (stateDir: string, namespace: string) => {
  const dir = path.join(stateDir, namespace, "agents")
  return fs.existsSync(dir) ? fs.readdirSync(dir) : []
}

const live = (name: string, body: () => Promise<void>) => it.live(name, () => Effect.promise(body))

describe("tezt-cloud CLI", () => {
  live("BASIC simple health prints both Hello world lines, exits 0 and leaves nothing", async () => {
    const { env, namespace, stateDir } = fresh()
    const cli = start(["BASIC", "simple", "health", "--localhost", "--tezt-cloud", namespace], env)
    assert.strictEqual(await cli.exit, 0, cli.stderr())
    assert.include(cli.stdout(), "Hello world from agent 0")
    assert.include(cli.stdout(), "Hello world from agent 1")
    assert.include(cli.stdout(), "Scenario ended successfully.")
    assert.deepStrictEqual(await noProcessLeft(namespace), [])
    assert.deepStrictEqual(sandboxes(stateDir, namespace), [])
    const runs = fs.readdirSync(path.join(stateDir, namespace, "runs"))
    assert.strictEqual(runs.length, 1)
    const configuration = JSON.parse(
      fs.readFileSync(path.join(stateDir, namespace, "runs", runs[0]!, "configuration.json"), "utf8")
    ) as Record<string, unknown>
    assert.strictEqual(configuration.tezt_cloud, namespace)
    assert.strictEqual(configuration.localhost, true)
  })

  live("the README's example scenario runs from a user module", async () => {
    const { env, namespace, stateDir } = fresh()
    const cli = start(["EXAMPLES", "ping", "--localhost", "--tezt-cloud", namespace], {
      ...env,
      TEZT_CLOUD_SCENARIOS: path.join(root, "scenarios/examples/PingPong.ts")
    })
    assert.strictEqual(await cli.exit, 0, cli.stderr())
    assert.match(cli.stdout(), /client got "pong" from server:30001/)
    assert.deepStrictEqual(await noProcessLeft(namespace), [])
    assert.deepStrictEqual(sandboxes(stateDir, namespace), [])
  })

  live("without a namespace the run fails with one clear line and creates nothing", async () => {
    const { env, stateDir } = fresh()
    const cli = start(["BASIC", "simple", "health", "--localhost"], { ...env, TEZT_CLOUD: "" })
    assert.strictEqual(await cli.exit, 1)
    assert.match(cli.stderr(), /^tezt-cloud: error: --tezt-cloud: the tezt-cloud value should be set/)
    assert.strictEqual(cli.stderr().trim().split("\n").length, 1)
    assert.deepStrictEqual(fs.readdirSync(stateDir), [])
  })

  live("TEZT_CLOUD from the environment is the namespace", async () => {
    const { env, namespace } = fresh()
    const cli = start(["BASIC", "simple", "--localhost"], { ...env, TEZT_CLOUD: namespace })
    assert.strictEqual(await cli.exit, 0, cli.stderr())
    assert.include(cli.stdout(), `namespace ${namespace}`)
  })

  live("a bad option value is one line naming the flag, exit 2, nothing created", async () => {
    const { env, namespace, stateDir } = fresh()
    const cli = start(["BASIC", "simple", "--localhost", "--tezt-cloud", namespace, "--vm-base-port", "abc"], env)
    assert.strictEqual(await cli.exit, 2)
    assert.include(cli.stderr(), "--vm-base-port")
    assert.strictEqual(cli.stderr().trim().split("\n").length, 1)
    assert.deepStrictEqual(fs.readdirSync(stateDir), [])
  })

  live("a backend that is not built yet is refused before anything is created", async () => {
    const { env, namespace, stateDir } = fresh()
    const cli = start(["BASIC", "simple", "--tezt-cloud", namespace], env)
    assert.strictEqual(await cli.exit, 1)
    assert.match(cli.stderr(), /not available yet.*--localhost/)
    assert.deepStrictEqual(fs.readdirSync(stateDir), [])
  })

  live("duplicate agent names are refused before anything is created", async () => {
    const { env, namespace, stateDir } = fresh()
    const cli = start(["TEST", "duplicate", "--localhost", "--tezt-cloud", namespace], env)
    assert.strictEqual(await cli.exit, 1)
    assert.include(cli.stderr(), "two agents are named twin")
    assert.deepStrictEqual(fs.readdirSync(stateDir), [])
  })

  live("--help describes a group's tags and options", async () => {
    const { env } = fresh()
    const cli = start(["BASIC", "--help"], env)
    assert.strictEqual(await cli.exit, 0, cli.stderr())
    for (const text of ["tezt-cloud BASIC", "--tezt-cloud", "--vms-limit", "--keep-alive", "--list", "--json"]) {
      assert.include(cli.stdout(), text)
    }
    const top = start(["--help"], env)
    assert.strictEqual(await top.exit, 0, top.stderr())
    for (const group of ["BASIC", "CLOUD"]) assert.include(top.stdout(), group)
  })

  live("--list shows the scenarios having all the tags, and runs nothing", async () => {
    const { env, stateDir } = fresh()
    const cli = start(["BASIC", "health", "--list"], env)
    assert.strictEqual(await cli.exit, 0, cli.stderr())
    assert.strictEqual(cli.stdout().trim(), "BASIC simple health: Simple health check to check local configuration")
    assert.deepStrictEqual(fs.readdirSync(stateDir), [])
    const none = start(["BASIC", "simple", "detach", "--list"], env)
    assert.strictEqual(await none.exit, 1)
    assert.include(none.stderr(), "no scenario of BASIC has all of the tags simple detach")
  })

  live("a failing scenario reports it, tears down and exits 1", async () => {
    const { env, namespace, stateDir } = fresh()
    const cli = start(["TEST", "fail", "--localhost", "--tezt-cloud", namespace], env)
    assert.strictEqual(await cli.exit, 1)
    assert.include(
      cli.stdout(),
      "Scenario terminated unexpectedly: agent agent-000: sh -c echo boom >&2; exit 3 exited"
    )
    assert.include(cli.stderr(), "tezt-cloud: error:")
    assert.deepStrictEqual(await noProcessLeft(namespace), [])
    assert.deepStrictEqual(sandboxes(stateDir, namespace), [])
  })

  live("--json prints every event as a JSON line", async () => {
    const { env, namespace } = fresh()
    const cli = start(["BASIC", "simple", "--localhost", "--json", "--tezt-cloud", namespace], env)
    assert.strictEqual(await cli.exit, 0, cli.stderr())
    const events = cli.stdout().trim().split("\n").map((l) => JSON.parse(l) as { type: string; message?: string })
    const types = events.map((e) => e.type)
    for (const t of ["run-start", "deploy-start", "agent-ready", "deploy-done", "exec", "output", "teardown-start"]) {
      assert.include(types, t)
    }
    assert.deepStrictEqual(events.filter((e) => e.type === "agent-down").length, 2)
    assert.include(events.filter((e) => e.type === "log").map((e) => e.message), "Hello world from agent 1")
  })

  live("one Ctrl+C: graceful teardown, exit 130, no process or sandbox left", async () => {
    const { env, namespace, stateDir } = fresh()
    const cli = start(["TEST", "block", "--localhost", "--tezt-cloud", namespace], env)
    await cli.waitFor("ready for signal")
    assert.isAbove(findMarked("TEZT_CLOUD_NS", namespace).length, 4)
    cli.proc.kill("SIGINT")
    assert.strictEqual(await cli.exit, 130)
    assert.include(cli.stdout(), "Scenario terminated unexpectedly: interrupted")
    assert.match(cli.stdout(), /agent agent-00\d down \(2\/2\)/)
    assert.deepStrictEqual(await noProcessLeft(namespace), [])
    assert.deepStrictEqual(sandboxes(stateDir, namespace), [])
  })

  live("two Ctrl+C: the second force-kills what is left and exits at once", async () => {
    const { env, namespace } = fresh()
    const cli = start(["TEST", "stubborn", "--localhost", "--tezt-cloud", namespace], env)
    await cli.waitFor("ready for signal")
    cli.proc.kill("SIGINT")
    await new Promise((r) => setTimeout(r, 300))
    // The daemon ignoring SIGTERM holds the graceful teardown for its grace period; the second signal cuts it.
    assert.isNull(cli.proc.exitCode)
    cli.proc.kill("SIGINT")
    assert.strictEqual(await cli.exit, 130)
    assert.include(cli.stderr(), "forced exit")
    assert.deepStrictEqual(await noProcessLeft(namespace), [])
  })

  live("kill -9 of the CLI mid-run, then CLOUD clean up, leaves no process or sandbox", async () => {
    const { env, namespace, stateDir } = fresh()
    const cli = start(["TEST", "block", "--localhost", "--tezt-cloud", namespace], env)
    await cli.waitFor("ready for signal")
    cli.proc.kill("SIGKILL")
    await cli.exit
    // The orphans are still there: nothing cleaned up after the CLI.
    assert.isAbove(findMarked("TEZT_CLOUD_NS", namespace).length, 4)
    assert.strictEqual(sandboxes(stateDir, namespace).length, 2)
    const cleanUp = start(["CLOUD", "clean", "up", "--tezt-cloud", namespace], env)
    assert.strictEqual(await cleanUp.exit, 0, cleanUp.stderr())
    assert.include(cleanUp.stdout(), "2 sandboxes removed")
    assert.deepStrictEqual(await noProcessLeft(namespace), [])
    assert.deepStrictEqual(sandboxes(stateDir, namespace), [])
    const ledger = fs.readFileSync(path.join(stateDir, namespace, "ledger.jsonl"), "utf8").trim().split("\n")
      .map((l) => JSON.parse(l) as { op: string; id: string })
    const outstanding = new Set<string>()
    for (const e of ledger) {
      if (e.op === "acquire") outstanding.add(e.id)
      else outstanding.delete(e.id)
    }
    assert.deepStrictEqual([...outstanding], [])
  })
})
