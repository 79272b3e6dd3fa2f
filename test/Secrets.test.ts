/**
 * The run's secrets never leave the orchestrator: canary values of `--auth-password`, `$TEZT_CLOUD_AUTH_PASSWORD`,
 * `$TEZT_CLOUD_GRAFANA_TOKEN` and `--slack-bot-token`/`$TEZTCLOUD_SLACK_BOT_TOKEN` are given to real runs of the
 * executable, then searched for everywhere a run writes or shows something: its output, every file of its state
 * dir (logs, `events.jsonl`, `configuration.json`, the ledger, Grafana's and Prometheus' files), its snapshot, the
 * website's pages, Prometheus' configuration and flags, the command lines and environments of every process it
 * starts and, on an ssh host, every command sshd was asked to run (its DEBUG3 log) and every process of the
 * account there. None may be found.
 *
 * **Details**
 *
 * What a run accepts decides the paths covered. Auth mode (`--auth-username` with a password) is refused as not
 * available yet, and a password alone is refused as incomplete: those runs are checked on their refusal (output,
 * state dir). The Grafana token and the Slack token are accepted: live runs on process sandboxes (with the website,
 * Prometheus and a fake Grafana that requires the token, which proves it was read) and on an ssh host carry them.
 * The user name is no secret (the configuration dump names it): it is passed, not searched for. The Slack token
 * of the process-sandbox run also feeds its Alertmanager (`--alert-handler slack`), whose loaded configuration is
 * searched too.
 */
import { assert, describe } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { findMarked } from "../packages/localhost/src/internal/processTree.ts"
import { fakeGrafana, freePort, freeRange, liveWith, serveJson } from "../packages/monitoring/test/utils.ts"
import { SshKeys } from "../packages/ssh/src/index.ts"
import { fresh, root, start } from "./fixtures/Cli.ts"
import * as Integration from "./fixtures/Integration.ts"
import * as SshHosts from "./fixtures/SshHosts.ts"

const tag = `${process.pid}-${Date.now().toString(36)}`

/** One canary per way a secret comes in. */
const canary = {
  authPasswordFlag: `canary-auth-password-flag-${tag}`,
  authPasswordEnv: `canary-auth-password-env-${tag}`,
  authPasswordFile: `canary-auth-password-file-${tag}`,
  grafanaToken: `canary-grafana-token-${tag}`,
  slackFlag: `canary-slack-flag-${tag}`,
  slackEnv: `canary-slack-env-${tag}`,
  slackFile: `canary-slack-file-${tag}`
}
const secrets: ReadonlyArray<string> = Object.values(canary)

/** The canaries in `text`, each named with `where`. */
const search = (where: string, text: string): Array<string> =>
  secrets.filter((secret) => text.includes(secret)).map((secret) => `${where}: ${secret}`)

/** Every file under `dir`, symbolic links not followed. */
const files = (dir: string): Array<string> =>
  fs.existsSync(dir)
    ? fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
      const full = path.join(dir, entry.name)
      return entry.isDirectory() ? files(full) : entry.isFile() ? [full] : []
    })
    : []

/** The canaries in the files under `dirs`. */
const inFiles = (...dirs: ReadonlyArray<string>) =>
  dirs.flatMap(files).flatMap((file) => search(file, fs.readFileSync(file, "latin1")))

/** The canaries in the command lines and environments of `pids` (those still there). */
const inProcesses = (pids: Iterable<number>) =>
  [...new Set(pids)].flatMap((pid) =>
    ["cmdline", "environ"].flatMap((part) => {
      try {
        return search(`/proc/${pid}/${part}`, fs.readFileSync(`/proc/${pid}/${part}`, "latin1"))
      } catch {
        return [] // gone meanwhile
      }
    })
  )

/** What the run started: the CLI's descendants (not the CLI, whose own command line the user typed) and the namespace's marked processes. */
const children = (cli: number, namespace: string) => [
  ...SshHosts.tree(cli).filter((pid) => pid !== cli),
  ...findMarked("TEZT_CLOUD_NS", namespace)
]

/** The canaries in the body of `GET url` (from 127.0.0.1). */
const inPage = async (url: string) => {
  const response = await fetch(url, { signal: AbortSignal.timeout(10_000) })
  assert.strictEqual(response.status, 200, url)
  return search(url, await response.text())
}

/** Ports of their own for the website, Prometheus and the agents, and a snapshot path in `dir`. */
const monitoringArgs = async (dir: string) => {
  const exportPath = path.join(dir, "snapshot")
  const ports = { website: await freePort(), prometheus: await freePort() }
  const args = [
    "--website",
    "--prometheus",
    "--website-port",
    String(ports.website),
    "--prometheus-port",
    String(ports.prometheus),
    "--vm-base-port",
    String(await freeRange(50)),
    "--prometheus-export-path",
    exportPath
  ]
  return { args, ports }
}

/**
 * The environment a live run gets: the secrets a run accepts, and the scenario fixtures (`TEST block`: daemons on
 * every agent, one escaping its process group, then "ready for signal" until interrupted).
 */
const liveEnv = (env: Record<string, string>) => ({
  ...env,
  TEZT_CLOUD_SCENARIOS: path.join(root, "test/fixtures/SignalScenarios.ts"),
  TEZT_CLOUD_GRAFANA_TOKEN: canary.grafanaToken,
  TEZTCLOUD_SLACK_BOT_TOKEN: canary.slackEnv
})

describe("secrets never leave the orchestrator", () => {
  liveWith()(
    "a refused auth mode, an incomplete one, and secrets in a config file: refused without them",
    () =>
      Effect.promise(async () => {
        const { env, namespace, stateDir } = fresh()
        // Not in the run's state dir, which is searched: it holds the canaries on purpose.
        const configFile = path.join(fresh().stateDir, "config.json")
        const runs: ReadonlyArray<readonly [ReadonlyArray<string>, Record<string, string>, RegExp]> = [
          [
            ["--auth-password", canary.authPasswordFlag],
            { TEZT_CLOUD_AUTH_USERNAME: `canary-user-${tag}` },
            /--auth-username is not available yet/
          ],
          [["--auth-password", canary.authPasswordFlag], {}, /auth mode needs both/],
          [[], { TEZT_CLOUD_AUTH_PASSWORD: canary.authPasswordEnv }, /auth mode needs both/],
          [["--config-file", configFile], {}, /secrets are never read from a config file/]
        ]
        fs.writeFileSync(
          configFile,
          JSON.stringify({ auth_password: canary.authPasswordFile, slack_bot_token: canary.slackFile })
        )
        for (const [args, more, refusal] of runs) {
          const cli = start(
            ["BASIC", "simple", "health", "--localhost", "--tezt-cloud", namespace, ...args],
            {
              ...env,
              ...more,
              TEZT_CLOUD_GRAFANA_TOKEN: canary.grafanaToken,
              TEZTCLOUD_SLACK_BOT_TOKEN: canary.slackEnv
            }
          )
          assert.notStrictEqual(await cli.exit, 0)
          assert.match(cli.stderr(), refusal)
          assert.deepStrictEqual(
            [...search("stdout", cli.stdout()), ...search("stderr", cli.stderr()), ...inFiles(stateDir)],
            []
          )
        }
      })
  )

  liveWith("prometheus")(
    "a live run on process sandboxes with the website, Prometheus and Grafana shows them nowhere",
    () =>
      Effect.gen(function*() {
        const grafana = yield* fakeGrafana({ token: canary.grafanaToken })
        const slack = yield* serveJson(() => [200, { ok: true }])
        const { env, namespace, stateDir } = fresh()
        const { args, ports } = yield* Effect.promise(() => monitoringArgs(stateDir))
        const cli = start(
          [
            "TEST",
            "block",
            "--localhost",
            "--grafana",
            "--grafana-url",
            grafana.url,
            "--slack-bot-token",
            canary.slackFlag,
            // Alertmanager starts with the run and reads the token from a file of its private dir.
            "--slack-channel-id",
            "C-CANARY",
            "--alert-handler",
            "slack",
            "--tezt-cloud",
            namespace,
            ...args
          ],
          { ...liveEnv(env), TEZT_CLOUD_SLACK_API_URL: `${slack}/api/chat.postMessage` }
        )
        const found = yield* Effect.promise(async () => {
          try {
            await cli.waitFor("ready for signal")
            // The search works: the CLI itself holds the canaries it was given.
            assert.isNotEmpty(inProcesses([cli.proc.pid!]))
            const prometheus = `http://127.0.0.1:${ports.prometheus}`
            return [
              ...inProcesses(children(cli.proc.pid!, namespace)),
              ...await inPage(`http://127.0.0.1:${ports.website}/`),
              ...await inPage(`http://127.0.0.1:${ports.website}/api/run`),
              ...await inPage(`${prometheus}/api/v1/status/config`),
              ...await inPage(`${prometheus}/api/v1/status/flags`),
              ...await inPage(`http://127.0.0.1:${ports.prometheus + 3}/api/v2/status`)
            ]
          } finally {
            cli.proc.kill("SIGINT")
            await cli.exit
          }
        })
        // Grafana got the token (it answers 401 otherwise): the run did read it.
        assert.isAbove(grafana.dashboards.size, 0, cli.stdout() + cli.stderr())
        assert.deepStrictEqual(
          [
            ...found,
            ...search("stdout", cli.stdout()),
            ...search("stderr", cli.stderr()),
            ...inFiles(stateDir)
          ],
          []
        )
        assert.isNotEmpty(files(stateDir).filter((f) => f.endsWith("events.jsonl")), "the run wrote its events")
        assert.isNotEmpty(files(stateDir).filter((f) => f.endsWith("configuration.json")))
      }).pipe(Effect.scoped),
    120_000
  )

  describe.runIf(Integration.available("ssh integration tests", [SshHosts.sshd, "/usr/bin/ssh-keygen"]))(
    "on an ssh host",
    () => {
      liveWith("prometheus")(
        "neither the commands sshd runs nor the processes of the account there carry them",
        () =>
          Effect.promise(async () => {
            const { env, namespace, stateDir } = fresh()
            const home = path.join(stateDir, "home")
            const key = await Effect.runPromise(SshKeys.ensure(namespace, undefined, home))
            const log = path.join(stateDir, "sshd.log")
            const host = await SshHosts.start({
              authorizedKeys: [key.publicKey],
              extraConfig: ["LogLevel DEBUG3"],
              logFile: log
            })
            const account = SshHosts.ensureUser()
            /** The processes of the account on the host (this machine). */
            const onHost = () =>
              fs.readdirSync("/proc").filter((e) => /^\d+$/.test(e)).flatMap((e) => {
                try {
                  return fs.statSync(`/proc/${e}`).uid === account ? [Number(e)] : []
                } catch {
                  return []
                }
              })
            const { args, ports } = await monitoringArgs(stateDir)
            const found: Array<string> = []
            const seen = new Set<number>()
            // Short-lived commands come and go: the account's processes are searched all along the run.
            const watching = { on: true }
            const watch = (async () => {
              while (watching.on) {
                const pids = onHost()
                for (const pid of pids) seen.add(pid)
                found.push(...inProcesses(pids))
                await new Promise((r) => setTimeout(r, 20))
              }
            })()
            const cli = start(
              [
                "TEST",
                "block",
                "--ssh-host",
                `${SshHosts.user}@${host.host}:${host.port}`,
                "--slack-bot-token",
                canary.slackFlag,
                "--tezt-cloud",
                namespace,
                ...args
              ],
              { ...liveEnv(env), HOME: home }
            )
            try {
              await cli.waitFor("ready for signal")
              found.push(
                ...inProcesses(children(cli.proc.pid!, namespace)),
                ...await inPage(`http://127.0.0.1:${ports.website}/`),
                ...await inPage(`http://127.0.0.1:${ports.website}/api/run`)
              )
            } finally {
              cli.proc.kill("SIGINT")
              await cli.exit
              watching.on = false
              await watch
              await host.stop()
            }
            const sshdLog = fs.readFileSync(log, "latin1")
            // The log shows every command sshd was asked to run (the run's own are there), the watch the processes
            // the account ran meanwhile (those commands, and what they started).
            assert.include(sshdLog, "mm_audit_run_command")
            assert.isNotEmpty([...seen])
            assert.deepStrictEqual(
              [
                ...new Set(found),
                ...search(log, sshdLog),
                ...search("stdout", cli.stdout()),
                ...search("stderr", cli.stderr()),
                ...inFiles(stateDir)
              ],
              []
            )
          }),
        120_000
      )
    }
  )
})
