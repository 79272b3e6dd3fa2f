/**
 * `tezt-cloud agents exec` warm (through the live run's control socket, `AgentsControl`) and cold (the full CLI
 * reconnecting to the agents, forced with `TEZT_CLOUD_COLD=1`), on a `--keep-alive` run of real process
 * sandboxes (and of agents on a real sshd host), with real CLI child processes: both print the same and exit the
 * same; the socket lives as long as the run; a dead run's socket sends the client to the cold path; a client that
 * dies takes its commands along.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { findMarked } from "../packages/localhost/src/internal/processTree.ts"
import { SshKeys } from "../packages/ssh/src/index.ts"
import { type Cli, fresh, live, noProcessLeft, sandboxes, start } from "./fixtures/Cli.ts"
import * as Integration from "./fixtures/Integration.ts"
import * as SshHosts from "./fixtures/SshHosts.ts"

const cold = { TEZT_CLOUD_COLD: "1" }

/** A `BASIC simple` run kept alive, ready for `agents` commands; `end` presses Enter and waits for its exit. */
const keptRun = async () => {
  const { env, namespace, stateDir } = fresh()
  const run = start(["BASIC", "simple", "--localhost", "--keep-alive", "--tezt-cloud", namespace], env, {
    stdin: "pipe"
  })
  await run.waitFor("Please press <enter>")
  const socket = path.join(stateDir, namespace, "control.sock")
  const exec = (args: ReadonlyArray<string>, extra: Record<string, string> = {}) =>
    start(["agents", "exec", "--tezt-cloud", namespace, ...args], { ...env, ...extra })
  // `./tezt-cloud` as a user runs it (no scenario modules of the tests).
  const launch = (args: ReadonlyArray<string>) =>
    start(["agents", "exec", "--tezt-cloud", namespace, ...args], { ...env, TEZT_CLOUD_SCENARIOS: "" }, {
      via: "launcher"
    })
  const end = async () => {
    run.proc.stdin!.end("\n")
    return run.exit
  }
  return { env, namespace, stateDir, run, socket, exec, launch, end }
}

const sorted = (text: string) => text.split("\n").filter((l) => l !== "").toSorted()

/** Both paths' output, once each has exited. */
const outcome = async (cli: Cli) => ({
  code: await cli.exit,
  stdout: sorted(cli.stdout()),
  stderr: sorted(cli.stderr())
})

/** Pids of the namespace's processes running `sleep`. */
const sleeps = (namespace: string) =>
  findMarked("TEZT_CLOUD_NS", namespace).filter((pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, "latin1").startsWith("sleep\0")
    } catch {
      return false
    }
  })

const waitUntil = async (condition: () => boolean) => {
  for (let i = 0; i < 400 && !condition(); i++) await new Promise((r) => setTimeout(r, 25))
  return condition()
}

describe("tezt-cloud agents exec", () => {
  live("warm (control socket) and cold print the same lines and exit with the same code", async () => {
    const r = await keptRun()
    assert.isTrue(fs.existsSync(r.socket), "the run serves its control socket")
    const script = [
      "-c",
      "echo \"out $TEZT_CLOUD_AGENT\"; echo \"err $TEZT_CLOUD_AGENT\" >&2; [ \"$TEZT_CLOUD_AGENT\" = \"$0\" ] || exit 4",
      `${r.namespace}/agent-000`
    ]
    const warm = await outcome(r.exec(["--", "sh", ...script]))
    assert.deepStrictEqual(warm, await outcome(r.exec(["--", "sh", ...script], cold)))
    assert.strictEqual(warm.code, 4)
    assert.deepStrictEqual(warm.stdout, [
      `[agent-000] out ${r.namespace}/agent-000`,
      `[agent-001] out ${r.namespace}/agent-001`
    ])
    assert.deepStrictEqual(warm.stderr, [
      `[agent-000] err ${r.namespace}/agent-000`,
      `[agent-001] err ${r.namespace}/agent-001`
    ])

    const one = await outcome(r.exec(["--agent=agent-001", "--", "echo", "just me"]))
    assert.deepStrictEqual(one, { code: 0, stdout: ["[agent-001] just me"], stderr: [] })
    assert.deepStrictEqual(one, await outcome(r.exec(["--agent=agent-001", "--", "echo", "just me"], cold)))

    const unknown = await outcome(r.exec(["--agent", "agent-000", "--agent", "nope", "--", "true"]))
    assert.deepStrictEqual(unknown, {
      code: 2,
      stdout: [],
      stderr: ["tezt-cloud: error: --agent: no agent named nope; the run's agents are agent-000, agent-001"]
    })
    assert.deepStrictEqual(
      unknown,
      await outcome(r.exec(["--agent", "agent-000", "--agent", "nope", "--", "true"], cold))
    )

    // The warm path asks the run, not the record: without the record, only the cold path is lost.
    const record = path.join(r.stateDir, r.namespace, "deployment.json")
    const saved = fs.readFileSync(record)
    fs.rmSync(record)
    assert.deepStrictEqual(await outcome(r.exec(["--", "echo", "hi"])), {
      code: 0,
      stdout: ["[agent-000] hi", "[agent-001] hi"],
      stderr: []
    })
    const noRecord = r.exec(["--", "echo", "hi"], cold)
    assert.strictEqual(await noRecord.exit, 2)
    assert.include(noRecord.stderr(), "no live run")
    fs.writeFileSync(record, saved)

    // The same live run: `agents fetch` brings a file of each agent into the run's artifacts dir, `logs` reads
    // what the run writes, and follows it to its end.
    assert.strictEqual(await r.exec(["--", "sh", "-c", "echo \"mine: $TEZT_CLOUD_AGENT\" >f.txt"]).exit, 0)
    const fetch = await outcome(start(["agents", "fetch", "--tezt-cloud", r.namespace, "f.txt"], r.env))
    const { artifactsDir } = JSON.parse(fs.readFileSync(path.join(r.stateDir, r.namespace, "last-run.json"), "utf8"))
    const fetched = (agent: string) => path.join(artifactsDir, agent, "f.txt")
    assert.deepStrictEqual(fetch, {
      code: 0,
      stdout: [`[agent-000] ${fetched("agent-000")}`, `[agent-001] ${fetched("agent-001")}`],
      stderr: []
    })
    assert.strictEqual(fs.readFileSync(fetched("agent-001"), "utf8"), `mine: ${r.namespace}/agent-001\n`)
    const follow = start(["logs", "--tezt-cloud", r.namespace, "--agent", "agent-001", "--follow"], r.env)
    await follow.waitFor("just me")

    assert.strictEqual(await r.end(), 0, r.run.stderr())
    assert.strictEqual(await follow.exit, 0, "--follow ends with the run")
    assert.include(follow.stdout(), "[agent-001] just me")
    assert.include(follow.stdout(), "agent agent-001 down", "what the run wrote last")
    assert.notInclude(follow.stdout(), "agent-000")
    assert.include(fs.readFileSync(path.join(artifactsDir, "agent-001", "commands.log"), "utf8"), "out| just me")
    assert.isFalse(fs.existsSync(r.socket), "the socket is gone with the run")
    const gone = r.exec(["--", "true"])
    assert.strictEqual(await gone.exit, 2)
    assert.include(gone.stderr(), "no live run")
    assert.deepStrictEqual(sandboxes(r.stateDir, r.namespace), [])
  })

  live("a client killed mid-command leaves no command behind on the agents", async () => {
    const r = await keptRun()
    const client = r.launch(["--", "sh", "-c", "echo started; exec sleep 30"])
    await client.waitFor("[agent-000] started")
    await client.waitFor("[agent-001] started")
    assert.strictEqual(sleeps(r.namespace).length, 2)
    // The launcher went straight to the thin client, not to the whole CLI's snapshot.
    assert.include(fs.readFileSync(`/proc/${client.proc.pid}/cmdline`, "latin1"), "AgentsExecClient.cjs\0agents\0")
    client.proc.kill("SIGKILL")
    await client.exit
    assert.isTrue(await waitUntil(() => sleeps(r.namespace).length === 0), "the sleeps are killed")
    // The run is unharmed: it serves the next client.
    const next = await outcome(r.exec(["--", "echo", "still here"]))
    assert.deepStrictEqual(next.stdout, ["[agent-000] still here", "[agent-001] still here"])
    assert.strictEqual(await r.end(), 0, r.run.stderr())
    assert.deepStrictEqual(await noProcessLeft(r.namespace), [])
  })

  live("after a kill -9 of the run, its stale socket sends the client to the cold path's 'run is gone'", async () => {
    const r = await keptRun()
    r.run.proc.kill("SIGKILL")
    await r.run.exit
    assert.isTrue(fs.existsSync(r.socket), "nobody removed the socket")
    const gone = `the run of ${r.namespace} that kept these agents (pid ${r.run.proc.pid}) is gone`
    const stale = r.exec(["--", "true"])
    assert.strictEqual(await stale.exit, 2)
    assert.include(stale.stderr(), gone)
    // The launcher sends it to the thin client (a socket is there), which runs the full CLI when nobody answers.
    assert.deepStrictEqual(await outcome(r.launch(["--", "true"])), await outcome(stale))
    const cleanUp = start(["CLOUD", "clean", "up", "--tezt-cloud", r.namespace], r.env)
    assert.strictEqual(await cleanUp.exit, 0, cleanUp.stderr())
    assert.deepStrictEqual(await noProcessLeft(r.namespace), [])
    assert.deepStrictEqual(sandboxes(r.stateDir, r.namespace), [])
  })
})

describe.runIf(Integration.available("ssh integration tests", [SshHosts.sshd, "/usr/bin/ssh-keygen"]))(
  "tezt-cloud agents exec on ssh-host agents",
  () => {
    // A run over ssh, four CLIs and a teardown: 25 s here, near the default minute on a loaded machine.
    it.live(
      "warm and cold agree, and a killed client's commands are killed on the host",
      () =>
        Effect.promise(async () => {
          const { env, namespace, stateDir } = fresh()
          const home = path.join(stateDir, "home")
          const key = await Effect.runPromise(SshKeys.ensure(namespace, undefined, home))
          const host = await SshHosts.start({ authorizedKeys: [key.publicKey] })
          try {
            const sshEnv = { ...env, HOME: home }
            const run = start(
              [
                "BASIC",
                "simple",
                "--ssh-host",
                `${SshHosts.user}@${host.host}:${host.port}`,
                "--keep-alive",
                "--tezt-cloud",
                namespace
              ],
              sshEnv,
              { stdin: "pipe" }
            )
            await run.waitFor("Please press <enter>")
            assert.isTrue(fs.existsSync(path.join(stateDir, namespace, "control.sock")))
            const exec = (args: ReadonlyArray<string>, extra: Record<string, string> = {}) =>
              start(["agents", "exec", "--tezt-cloud", namespace, ...args], { ...sshEnv, ...extra })
            const script = ["sh", "-c", "echo \"on $TEZT_CLOUD_AGENT\"; echo oops >&2; exit 5"]
            const warm = await outcome(exec(["--", ...script]))
            assert.deepStrictEqual(warm, await outcome(exec(["--", ...script], cold)))
            assert.deepStrictEqual(warm, {
              code: 5,
              stdout: [`[agent-000] on ${namespace}/agent-000`, `[agent-001] on ${namespace}/agent-001`],
              stderr: ["[agent-000] oops", "[agent-001] oops"]
            })

            const client = exec(["--agent", "agent-001", "--", "sh", "-c", "echo started; exec sleep 30"])
            await client.waitFor("[agent-001] started")
            assert.strictEqual(sleeps(namespace).length, 1)
            client.proc.kill("SIGKILL")
            await client.exit
            assert.isTrue(await waitUntil(() => sleeps(namespace).length === 0), "the sleep is killed on the host")

            run.proc.stdin!.end("\n")
            assert.strictEqual(await run.exit, 0, run.stderr())
            assert.isFalse(fs.existsSync(path.join(stateDir, namespace, "control.sock")))
            assert.deepStrictEqual(await noProcessLeft(namespace), [])
          } finally {
            await host.stop()
          }
        }),
      120_000
    )
  }
)
