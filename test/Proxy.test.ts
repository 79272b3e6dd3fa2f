/**
 * `--proxy` end to end, with the real executable and a real engine (test/fixtures/DockerEngine.ts): the proxy is a
 * local container on a network of its own, made from the proxy image that already holds the orchestrator, which runs there, the CLI here comes and goes. A run
 * passes and leaves nothing; a long run is detached from, reattached to, killed with `kill -9` here, reattached
 * to again, loses its ssh connection, and is torn down with Ctrl+C, its log shown once, in order, with no gap
 * (but the one line a `kill -9` may catch between showing and counting it);
 * a proxy gone under its record is a clear error; secrets reach no command line, environment or file of the
 * proxy but the 0600 one.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { DockerAgents, DockerClient } from "@tezt-cloud/docker"
import { ProxyImage } from "@tezt-cloud/proxy"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { fresh, outstanding, root, start } from "./fixtures/Cli.ts"
import * as DockerEngine from "./fixtures/DockerEngine.ts"
import * as Integration from "./fixtures/Integration.ts"

/** How long a test may take: tens of seconds on a shared machine, minutes on a loaded one. */
const testMillis = 300_000

/** A test with real I/O and time to deploy a proxy. */
const live = (name: string, body: () => Promise<void>) => it.live(name, () => Effect.promise(body), testMillis)

/**
 * The CLI's exit code; a CLI still running when the test's time is nearly up fails the test with what it printed
 * (a test's own time-out would say nothing of where it waits).
 */
const exitOf = (cli: ReturnType<typeof start>, millis: number = testMillis - 20_000) => {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`the CLI still runs after ${millis / 1000} s:\n${cli.stdout()}\n${cli.stderr()}`)),
      millis
    )
  })
  return Promise.race([cli.exit, late]).finally(() => clearTimeout(timer))
}

const enabled = Integration.available("proxy CLI tests", DockerEngine.binaries)

const scenarios = path.join(root, "test/fixtures/ProxyScenarios.ts")

const onEngine = DockerEngine.onEngine

const used: Array<string> = []

/** A fresh namespace on the test engine, with the proxy fixtures' scenarios. */
const freshProxy = () => {
  const f = fresh(DockerEngine.host)
  used.push(f.namespace)
  return { ...f, env: { ...f.env, TEZT_CLOUD_SCENARIOS: scenarios } }
}

/** The long run, without Grafana (so without Prometheus, the website and exporters): lighter on a shared machine. */
const tick = (
  namespace: string
) => ["PROXY", "tick", "--localhost", "--proxy", "--no-grafana", "--tezt-cloud", namespace]

const proxyContainer = (namespace: string) => DockerAgents.containerName(namespace, `${namespace}-proxy`)

/** Runs `script` with `sh -c` in the namespace's proxy container. */
const onProxy = (namespace: string, script: string) =>
  onEngine(Effect.flatMap(DockerClient.DockerClient, (d) => d.exec(proxyContainer(namespace), ["sh", "-c", script])))

/** Everything of the namespace this machine and the engine may still hold once the CLI is done. */
const leftovers = async (stateDir: string, namespace: string) => ({
  docker: await onEngine(DockerAgents.leftovers(namespace)),
  ledger: outstanding(stateDir, namespace),
  files: ["proxy.json", "proxy.offset", "control.sock", "deployment.json"].filter((f) =>
    fs.existsSync(path.join(stateDir, namespace, f))
  )
})

const nothing = { docker: { containers: [], networks: [], images: [] }, ledger: [], files: [] }

/** The tick numbers of a run's output, in order. */
const ticks = (output: string) => [...output.matchAll(/\] tick (\d+)$/gm)].map((m) => Number(m[1]))

/** The last tick an output shows. */
const lastTick = (output: string) => ticks(output).at(-1) ?? 0

// Each test has a namespace, a proxy and a network of its own: they run side by side (their waits on the proxy's
// ticks and its 5 s answer overlap), from the proxy image made once before them.
describe.runIf(enabled).concurrent("tezt-cloud --localhost --proxy", () => {
  beforeAll(async () => {
    await DockerEngine.ready()
    await onEngine(ProxyImage.ensure())
  }, 600_000)

  afterAll(() => DockerEngine.removeAll(used))

  live("BASIC simple health --localhost --proxy passes on the proxy and leaves nothing", async () => {
    const { env, namespace, stateDir } = freshProxy()
    const cli = start(["BASIC", "simple", "health", "--localhost", "--proxy", "--tezt-cloud", namespace], env)
    assert.strictEqual(await exitOf(cli), 0, cli.stdout() + cli.stderr())
    assert.include(cli.stdout(), "proxy: the run started on root@")
    // The proxy container comes from the proxy image, which holds the orchestrator: nothing is shipped.
    assert.include(cli.stdout(), "proxy: the orchestrator is already there")
    assert.notInclude(cli.stdout(), "shipping the orchestrator")
    // And it runs as it is: no image is built for the namespace (its key is given at the container's start).
    assert.notMatch(cli.stdout(), /image \S+: building/)
    assert.include(cli.stdout(), "on the proxy; artifacts in")
    assert.include(cli.stdout(), "Hello world from agent 1")
    assert.deepStrictEqual(await leftovers(stateDir, namespace), nothing)
    const runs = fs.readdirSync(path.join(stateDir, namespace, "runs"))
    assert.lengthOf(runs, 1)
    const artifacts = path.join(stateDir, namespace, "runs", runs[0]!)
    assert.include(fs.readFileSync(path.join(artifacts, "events.jsonl"), "utf8"), "Hello world from agent 1")
    assert.isTrue(fs.existsSync(path.join(artifacts, "prometheus-snapshot")), "Prometheus' snapshot came back")
  })

  live(
    "detach, reattach, kill -9, reattach, a dropped connection, Ctrl+C: the log continues with no gap and no repeat (but the line a kill -9 caught), and the teardown leaves nothing",
    async () => {
      const { env, namespace, stateDir } = freshProxy()
      const first = start(tick(namespace), env, { stdin: "pipe" })
      await first.waitFor("] tick 3")
      first.proc.stdin!.end() // Ctrl+D
      assert.strictEqual(await first.exit, 0, first.stderr())
      assert.include(first.stdout(), "proxy: detached; the run goes on")

      // Nobody is attached: the run goes on.
      const status = start(["proxy", "status", "--tezt-cloud", namespace], env)
      assert.strictEqual(await status.exit, 0, status.stderr())
      assert.include(status.stdout(), `${namespace}: running`)
      assert.notInclude(status.stdout(), "--ssh-private-key")

      const second = start(tick(namespace), env, { stdin: "pipe" })
      await second.waitFor("proxy: reattaching to PROXY tick")
      await second.waitFor(`] tick ${lastTick(first.stdout()) + 8}`)
      second.proc.kill("SIGKILL")
      await second.exit

      const third = start(tick(namespace), env, { stdin: "pipe" })
      await third.waitFor("proxy: reattaching to PROXY tick")
      const before = lastTick(second.stdout())
      await third.waitFor(`] tick ${before + 4}`)
      // The proxy's sshd drops this machine's connection: the log is reopened where it stopped.
      const dropped = await onProxy(namespace, "ps -eo pid=,args= | awk '/[s]shd: root/ {print $1}' | xargs -r kill -9")
      assert.strictEqual(dropped.code, 0, dropped.stderr)
      const after = lastTick(third.stdout())
      await third.waitFor(`] tick ${after + 8}`)
      assert.include(third.stdout(), "; reconnecting", "the connection did drop")
      third.proc.kill("SIGINT") // Ctrl+C
      assert.strictEqual(await third.exit, 130, third.stderr())
      assert.include(third.stdout(), "proxy: asking the run to tear down")
      assert.include(third.stdout(), "agent agent-000 down (1/1)")

      // A kill -9 that lands between a line shown and its offset recorded has that line shown again (by design:
      // none is lost; ProxyRecord's unit test forces that moment): the third may begin with the second's last
      // tick, once. Anywhere else a repeat is a failure.
      const [a, b, c] = [ticks(first.stdout()), ticks(second.stdout()), ticks(third.stdout())]
      const shown = [...a, ...b, ...(c[0] !== undefined && c[0] === b.at(-1) ? c.slice(1) : c)]
      assert.deepStrictEqual(shown, Array.from({ length: shown.length }, (_, i) => i + 1), "every tick once, in order")
      assert.deepStrictEqual(await leftovers(stateDir, namespace), nothing)
    }
  )

  live("Ctrl+C while the proxy is being set up removes it: nothing is left", async () => {
    const { env, namespace, stateDir } = freshProxy()
    const cli = start(tick(namespace), env)
    await cli.waitFor(`agent ${namespace}-proxy ready`)
    cli.proc.kill("SIGINT")
    assert.strictEqual(await cli.exit, 130, cli.stderr())
    assert.deepStrictEqual(await leftovers(stateDir, namespace), nothing)
  })

  live(
    "a proxy gone under its record: one clear error, nothing created; CLOUD clean up then leaves nothing",
    async () => {
      const { env, namespace, stateDir } = freshProxy()
      const run = start(tick(namespace), env, { stdin: "pipe" })
      await run.waitFor("] tick 2")
      run.proc.stdin!.end()
      assert.strictEqual(await run.exit, 0, run.stderr())
      await onEngine(Effect.flatMap(DockerClient.DockerClient, (d) => d.remove(proxyContainer(namespace))))

      const rerun = start(tick(namespace), env)
      assert.strictEqual(await rerun.exit, 1)
      const error = rerun.stderr().trim()
      assert.strictEqual(error.split("\n").length, 1, error)
      assert.match(error, /proxy\.json: the proxy of \S+ recorded here .* does not answer within 5 s/)
      assert.include(error, `run 'tezt-cloud CLOUD clean up --tezt-cloud ${namespace}'`)
      assert.deepStrictEqual((await onEngine(DockerAgents.leftovers(namespace))).containers, [], "nothing deployed")

      const cleanUp = start(["CLOUD", "clean", "up", "--tezt-cloud", namespace], env)
      assert.strictEqual(await cleanUp.exit, 0, cleanUp.stderr())
      assert.deepStrictEqual(await leftovers(stateDir, namespace), nothing)
    }
  )

  live(
    "secrets reach no command line, no environment and no file of the proxy but the 0600 one; the website and Prometheus are forwarded here",
    async () => {
      const { env, namespace, stateDir } = freshProxy()
      const token = "glsa-proxy-test-token"
      const slack = "xoxb-proxy-test-token"
      // With Prometheus and the website, on the proxy's loopback, forwarded here.
      const args = [...tick(namespace), "--prometheus", "--slack-bot-token", slack]
      const run = start(args, { ...env, TEZT_CLOUD_GRAFANA_TOKEN: token }, { stdin: "pipe" })
      await run.waitFor("] tick 2")
      const forwarded = (name: string) => {
        const url = new RegExp(`proxy: the run's ${name}: (http://127\\.0\\.0\\.1:\\d+)`).exec(run.stdout())?.[1]
        assert.isDefined(url, `${name} is forwarded`)
        return url!
      }
      const page = await fetch(`${forwarded("website")}/api/run`)
      assert.strictEqual(page.status, 200)
      const shown = await page.text()
      assert.include(shown, namespace)
      for (const secret of [token, slack]) assert.notInclude(shown, secret)
      assert.strictEqual((await fetch(`${forwarded("prometheus")}/-/ready`)).status, 200)
      const processes = await onProxy(namespace, "ps -eo args=; cat /proc/[0-9]*/environ | tr '\\0' '\\n'")
      assert.strictEqual(processes.code, 0, processes.stderr)
      assert.include(processes.stdout, "--tezt-cloud", "the orchestrator is in the list")
      for (const secret of [token, slack]) assert.notInclude(processes.stdout, secret)
      const files = await onProxy(
        namespace,
        `grep -rlF -e ${token} -e ${slack} / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev 2>/dev/null | ` +
          `while read -r f; do echo "$(stat -c %a "$f") $f"; done`
      )
      assert.deepStrictEqual(files.stdout.trim().split("\n"), [`600 /root/.tezt-cloud-proxy/${namespace}/secrets.json`])
      for (const file of fs.readdirSync(path.join(stateDir, namespace))) {
        const text = fs.readFileSync(path.join(stateDir, namespace, file), "utf8")
        for (const secret of [token, slack]) assert.notInclude(text, secret, file)
      }
      run.proc.kill("SIGINT")
      assert.strictEqual(await run.exit, 130, run.stderr())
      assert.deepStrictEqual(await leftovers(stateDir, namespace), nothing)
    }
  )
})
