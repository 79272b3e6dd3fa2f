/**
 * End-to-end tests of the real `tezt-cloud` executable: a child `node packages/cli/src/bin.mjs` with its own state
 * dir, real process sandboxes, real signals. What is checked is what a user sees: exit codes, output, and that
 * nothing of the run is left on the machine.
 */
import { assert, describe } from "@effect/vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { findMarked } from "../packages/localhost/src/internal/processTree.ts"
import {
  fresh,
  leftovers,
  live,
  noProcessLeft,
  nothingLeft,
  outstanding,
  root,
  running,
  sandboxes,
  start
} from "./fixtures/Cli.ts"

/** Whether `CLOUD clean up` takes the namespace's lock (it is marked `exclusive`, as runs that deploy are). */

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
    const artifacts = path.join(stateDir, namespace, "runs", runs[0]!)
    const configuration = JSON.parse(
      fs.readFileSync(path.join(artifacts, "configuration.json"), "utf8")
    ) as Record<string, unknown>
    assert.strictEqual(configuration.tezt_cloud, namespace)
    assert.strictEqual(configuration.localhost, true)
    // The run's event log is beside it: one JSON object a line, from the run's start to its end.
    const events = fs.readFileSync(path.join(artifacts, "events.jsonl"), "utf8").trimEnd().split("\n")
      .map((line) => JSON.parse(line) as { type: string; namespace?: string; ok?: boolean })
    assert.deepInclude(events[0], { type: "run-start", namespace })
    assert.deepInclude(events.find((e) => e.type === "run-end"), { ok: true })
    assert.include(events.map((e) => e.type), "agent-down")
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
    assert.strictEqual(await cli.exit, 2)
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

  live("a config file that cannot be read is one line; --log-level debug adds the error under it", async () => {
    const { env, namespace, stateDir } = fresh()
    // Missing: unreadable, even by root.
    const file = `${stateDir}-config-missing.json`
    const argv = ["BASIC", "simple", "--localhost", "--tezt-cloud", namespace, "--config-file", file]
    const line =
      `tezt-cloud: error: --config-file: cannot read ${file}: ENOENT: no such file or directory, stat '${file}'`
    const plain = start(argv, env)
    assert.strictEqual(await plain.exit, 2)
    assert.strictEqual(plain.stderr().trim(), line)
    assert.notInclude(plain.stdout(), "caused by")
    const debug = start([...argv, "--log-level", "debug"], env)
    assert.strictEqual(await debug.exit, 2)
    assert.strictEqual(debug.stderr().trim(), line, "the error itself is still one line")
    assert.match(debug.stdout(), /caused by Error: ENOENT: no such file or directory, stat .*\n\s+at .*statSync/)
    assert.deepStrictEqual(fs.readdirSync(stateDir), [])
  })

  live("a subsystem that is not built yet is refused before anything is created", async () => {
    const { env, namespace, stateDir } = fresh()
    const cli = start(
      ["BASIC", "simple", "--localhost", "--proxy", "--tc-delay", "0.1,0.2", "--tezt-cloud", namespace],
      env
    )
    assert.strictEqual(await cli.exit, 1)
    assert.match(
      cli.stderr(),
      /--tc-delay is not available yet: runs on the proxy have no network faults yet; drop --tc-delay/
    )
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
    assert.strictEqual(
      cli.stdout().trim(),
      [
        "BASIC simple health: Simple health check to check local configuration",
        "BASIC monitoring health: Health check for monitoring services",
        "BASIC network health: Network health between two agents"
      ].join("\n")
    )
    assert.deepStrictEqual(fs.readdirSync(stateDir), [])
    const none = start(["BASIC", "simple", "detach", "--list"], env)
    assert.strictEqual(await none.exit, 2)
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

  live("SIGHUP (terminal closed, ssh session lost): graceful teardown, exit 130, nothing left", async () => {
    const { env, namespace, stateDir } = fresh()
    const cli = start(["TEST", "block", "--localhost", "--tezt-cloud", namespace], env)
    await cli.waitFor("ready for signal")
    cli.proc.kill("SIGHUP")
    assert.strictEqual(await cli.exit, 130, cli.stderr())
    assert.include(cli.stderr(), "interrupted (SIGHUP): tearing down")
    assert.include(cli.stdout(), "Scenario terminated unexpectedly: interrupted")
    assert.deepStrictEqual(await leftovers(stateDir, namespace), nothingLeft)
  })

  live("a standard output closed under the run (| head -1) tears down gracefully: nothing left", async () => {
    const { env, namespace, stateDir } = fresh()
    const cli = start(["TEST", "chatty", "--localhost", "--tezt-cloud", namespace], env)
    await cli.waitFor("ready for signal")
    // The reader goes away, as `head -1` does after its line: the run's next write fails with EPIPE.
    cli.proc.stdout!.destroy()
    assert.strictEqual(await cli.exit, 130, cli.stderr())
    assert.include(cli.stderr(), "the standard output is closed (EPIPE): tearing down")
    assert.deepStrictEqual(await leftovers(stateDir, namespace), nothingLeft)
  })

  live("two Ctrl+C: the second force-kills what is left and exits at once", async () => {
    const { env, namespace } = fresh()
    const cli = start(["TEST", "stubborn", "--localhost", "--tezt-cloud", namespace], env)
    await cli.waitFor("ready for signal")
    cli.proc.kill("SIGINT")
    // The second signal comes once the first is being acted on: the daemon ignoring SIGTERM holds the graceful
    // teardown for its grace period, and the second signal cuts it.
    await cli.waitFor("tearing down (press Ctrl+C again to force)", "stderr")
    assert.isNull(cli.proc.exitCode)
    cli.proc.kill("SIGINT")
    assert.strictEqual(await cli.exit, 130)
    assert.include(cli.stderr(), "forced exit")
    assert.deepStrictEqual(await noProcessLeft(namespace), [])
  })

  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    live(
      `${signal} at the --keep-alive prompt, the scenario's daemon still running, tears down and exits 130`,
      async () => {
        const { env, namespace, stateDir } = fresh()
        const cli = start(["BASIC", "run", "detach", "--localhost", "--keep-alive", "--tezt-cloud", namespace], env, {
          stdin: "pipe"
        })
        await cli.waitFor("Please press <enter>")
        // What keep-alive is for: the detached sleep is there to look at.
        assert.strictEqual(running(namespace, ["sleep", "10"]).length, 1, cli.stdout())
        cli.proc.kill(signal)
        assert.strictEqual(await cli.exit, 130, cli.stderr())
        assert.include(cli.stdout(), "Scenario ended successfully.")
        assert.deepStrictEqual(await leftovers(stateDir, namespace), nothingLeft)
      }
    )
  }

  live("a failed scenario kept alive keeps its daemons until Enter, then fails with exit 1", async () => {
    const { env, namespace, stateDir } = fresh()
    const cli = start(["TEST", "fail", "--localhost", "--keep-alive", "--tezt-cloud", namespace], env, {
      stdin: "pipe"
    })
    await cli.waitFor("Please press <enter>")
    assert.include(cli.stdout(), "Scenario terminated unexpectedly")
    assert.strictEqual(running(namespace, ["sleep", "300"]).length, 1, cli.stdout())
    cli.proc.stdin!.end("\n")
    assert.strictEqual(await cli.exit, 1, cli.stderr())
    assert.deepStrictEqual(await leftovers(stateDir, namespace), nothingLeft)
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
    assert.deepStrictEqual(outstanding(stateDir, namespace), [])
  })

  live("agents list|exec|copy on a run kept alive (exit = the worst agent's); --config-file replays it", async () => {
    const { env, namespace, stateDir } = fresh()
    const run = start(["BASIC", "simple", "--localhost", "--keep-alive", "--tezt-cloud", namespace], env, {
      stdin: "pipe"
    })
    await run.waitFor("Please press <enter>")
    const list = start(["agents", "list", "--tezt-cloud", namespace], env)
    assert.strictEqual(await list.exit, 0, list.stderr())
    assert.deepStrictEqual(list.stdout().trim().split("\n").map((l) => l.split("\t")[0]), [
      "AGENT",
      "agent-000",
      "agent-001"
    ])
    assert.strictEqual(list.stdout().split("\n")[0], "AGENT\tBACKEND\tWHERE\tHOME")
    const exec = start(
      [
        "agents",
        "exec",
        "--tezt-cloud",
        namespace,
        "--",
        "sh",
        "-c",
        "echo \"on $TEZT_CLOUD_AGENT\"; [ \"$TEZT_CLOUD_AGENT\" = \"$0\" ] || exit 4",
        `${namespace}/agent-000`
      ],
      env
    )
    assert.strictEqual(await exec.exit, 4, exec.stderr())
    assert.include(exec.stdout(), `[agent-000] on ${namespace}/agent-000`)
    assert.include(exec.stdout(), `[agent-001] on ${namespace}/agent-001`)
    const one = start(
      ["agents", "exec", "--tezt-cloud", namespace, "--agent", "agent-001", "--", "echo", "just me"],
      env
    )
    assert.strictEqual(await one.exit, 0, one.stderr())
    assert.strictEqual(one.stdout(), "[agent-001] just me\n")
    const copy = start(["agents", "copy", "--tezt-cloud", namespace, path.join(root, "README.md")], env)
    assert.strictEqual(await copy.exit, 0, copy.stderr())
    for (const agent of ["agent-000", "agent-001"]) {
      const remote = new RegExp(`\\[${agent}\\] (\\S+)`).exec(copy.stdout())![1]!
      assert.strictEqual(fs.readFileSync(remote, "utf8"), fs.readFileSync(path.join(root, "README.md"), "utf8"))
    }
    // The same file again: said, not silently skipped.
    const again = start(["agents", "copy", "--tezt-cloud", namespace, path.join(root, "README.md")], env)
    assert.strictEqual(await again.exit, 0, again.stderr())
    assert.include(
      again.stdout(),
      "[agent-001] not copied: the agent has the file with that content already (--refresh copies anyway)"
    )
    // Where copy wrote it (the binaries path) is where exec finds it.
    const ls = start(["agents", "exec", "--tezt-cloud", namespace, "--", "ls", "/tmp/tezt-runners"], env)
    assert.strictEqual(await ls.exit, 0, ls.stderr())
    assert.include(ls.stdout(), "[agent-000] README.md")
    assert.include(ls.stdout(), "[agent-001] README.md")
    const unknown = start(["agents", "exec", "--tezt-cloud", namespace, "--agent", "nope", "--", "true"], env)
    assert.strictEqual(await unknown.exit, 2)
    assert.include(unknown.stderr(), "no agent named nope; the run's agents are agent-000, agent-001")
    run.proc.stdin!.end("\n")
    assert.strictEqual(await run.exit, 0, run.stderr())
    const gone = start(["agents", "list", "--tezt-cloud", namespace], env)
    assert.strictEqual(await gone.exit, 2)
    assert.include(gone.stderr(), "no live run")
    assert.deepStrictEqual(sandboxes(stateDir, namespace), [])
    // The configuration.json it wrote, given back with --config-file (and nothing else but another namespace),
    // runs it again as it ran: on process sandboxes (--localhost), kept alive (--keep-alive), every option the same.
    const configurationOf = (ns: string) => {
      const [dir] = fs.readdirSync(path.join(stateDir, ns, "runs"))
      return path.join(stateDir, ns, "runs", dir!, "configuration.json")
    }
    const first = configurationOf(namespace)
    const replayed = `${namespace}-again`
    const replay = start(["BASIC", "simple", "--config-file", first, "--tezt-cloud", replayed], env, { stdin: "pipe" })
    await replay.waitFor("Please press <enter>")
    assert.include(replay.stdout(), "backend local process sandboxes")
    replay.proc.stdin!.end("\n")
    assert.strictEqual(await replay.exit, 0, replay.stderr())
    const [before, after] = [first, configurationOf(replayed)].map((f) =>
      JSON.parse(fs.readFileSync(f, "utf8")) as Record<string, unknown>
    )
    assert.deepStrictEqual({ ...after, tezt_cloud: namespace }, before)
    assert.deepStrictEqual(await leftovers(stateDir, replayed), nothingLeft)
  })

  /** The live run's files that a second run of the namespace must leave alone. */
  const liveFiles = (stateDir: string, namespace: string) =>
    ["control.sock", "deployment.json", "lock", "agents"].filter((f) =>
      fs.existsSync(path.join(stateDir, namespace, f))
    )

  live("a second run of a namespace whose run is kept alive is refused with one line naming its pid", async () => {
    const { env, namespace, stateDir } = fresh()
    const first = start(["BASIC", "simple", "--localhost", "--keep-alive", "--tezt-cloud", namespace], env, {
      stdin: "pipe"
    })
    await first.waitFor("Please press <enter>")
    const before = liveFiles(stateDir, namespace)
    assert.deepStrictEqual(before, ["control.sock", "deployment.json", "lock", "agents"])
    const agents = sandboxes(stateDir, namespace)
    const second = start(["BASIC", "simple", "health", "--localhost", "--tezt-cloud", namespace], env)
    assert.strictEqual(await second.exit, 2, second.stdout())
    assert.strictEqual(
      second.stderr(),
      `tezt-cloud: error: --tezt-cloud: namespace ${namespace} is in use by 'tezt-cloud BASIC simple' (pid ${first.proc.pid}, since ${
        /since ([^)]+)\)/.exec(second.stderr())?.[1]
      }): stop it first, or give another --tezt-cloud\n`
    )
    // A maintenance job that needs the namespace (as CLOUD clean up does) is refused the same way.
    const job = start(["TEST", "exclusive", "--tezt-cloud", namespace], env)
    assert.strictEqual(await job.exit, 2, job.stdout())
    assert.match(job.stderr(), new RegExp(`\\(pid ${first.proc.pid}, since [^)]+\\): stop it first\\n$`))
    assert.notInclude(job.stdout(), "the exclusive job ran")
    // The first run's agents, socket, record and lock are as they were: it still works.
    assert.deepStrictEqual(liveFiles(stateDir, namespace), before)
    assert.deepStrictEqual(sandboxes(stateDir, namespace), agents)
    const list = start(["agents", "list", "--tezt-cloud", namespace], env)
    assert.strictEqual(await list.exit, 0, list.stderr())
    first.proc.stdin!.end("\n")
    assert.strictEqual(await first.exit, 0, first.stderr())
    assert.deepStrictEqual(await leftovers(stateDir, namespace), nothingLeft)
    // Once it is over, the namespace is free again.
    const after = start(["TEST", "exclusive", "--tezt-cloud", namespace], env)
    assert.strictEqual(await after.exit, 0, after.stderr())
    assert.include(after.stdout(), "the exclusive job ran")
    assert.isFalse(fs.existsSync(path.join(stateDir, namespace, "lock")))
  })

  live("the lock of a run killed with -9 does not hold the namespace: the next run takes it", async () => {
    const { env, namespace, stateDir } = fresh()
    const cli = start(["BASIC", "simple", "--localhost", "--keep-alive", "--tezt-cloud", namespace], env, {
      stdin: "pipe"
    })
    await cli.waitFor("Please press <enter>")
    cli.proc.kill("SIGKILL")
    await cli.exit
    assert.isTrue(fs.existsSync(path.join(stateDir, namespace, "lock")))
    const cleanUp = start(["CLOUD", "clean", "up", "--tezt-cloud", namespace], env)
    assert.strictEqual(await cleanUp.exit, 0, cleanUp.stderr())
    const next = start(["BASIC", "simple", "--localhost", "--tezt-cloud", namespace], env)
    assert.strictEqual(await next.exit, 0, next.stderr())
    assert.deepStrictEqual(await leftovers(stateDir, namespace), nothingLeft)
  })

  live(
    "a deployment record whose pid now names another process is a dead run's: gone for agents, cleaned up",
    async () => {
      const { env, namespace, stateDir } = fresh()
      const dir = path.join(stateDir, namespace)
      const record = path.join(dir, "deployment.json")
      const socket = path.join(dir, "control.sock")
      fs.mkdirSync(dir, { recursive: true })
      // A live pid (this test's) and no agents: only the start time says the record is not its run's.
      fs.writeFileSync(record, JSON.stringify({ namespace, pid: process.pid, started: "1", agents: [] }))
      fs.writeFileSync(socket, "")
      const exec = start(["agents", "exec", "--tezt-cloud", namespace, "--", "true"], { ...env, TEZT_CLOUD_COLD: "1" })
      assert.strictEqual(await exec.exit, 2)
      assert.include(exec.stderr(), `the run of ${namespace} that kept these agents (pid ${process.pid}) is gone`)
      const cleanUp = start(["CLOUD", "clean", "up", "--tezt-cloud", namespace], env)
      assert.strictEqual(await cleanUp.exit, 0, cleanUp.stderr())
      assert.deepStrictEqual([record, socket].filter((f) => fs.existsSync(f)), [])
    }
  )

  live(
    "CLOUD clean up refuses while a live run holds the namespace, naming its pid, and removes nothing",
    async () => {
      const { env, namespace, stateDir } = fresh()
      const first = start(["BASIC", "simple", "--localhost", "--keep-alive", "--tezt-cloud", namespace], env, {
        stdin: "pipe"
      })
      await first.waitFor("Please press <enter>")
      const before = liveFiles(stateDir, namespace)
      const agents = sandboxes(stateDir, namespace)
      const cleanUp = start(["CLOUD", "clean", "up", "--tezt-cloud", namespace], env)
      assert.strictEqual(await cleanUp.exit, 2, cleanUp.stdout())
      assert.match(cleanUp.stderr(), new RegExp(`\\(pid ${first.proc.pid}, since [^)]+\\): stop it first\\n$`))
      assert.deepStrictEqual(liveFiles(stateDir, namespace), before)
      assert.deepStrictEqual(sandboxes(stateDir, namespace), agents)
      first.proc.stdin!.end("\n")
      assert.strictEqual(await first.exit, 0, first.stderr())
      assert.deepStrictEqual(await leftovers(stateDir, namespace), nothingLeft)
    }
  )
})
