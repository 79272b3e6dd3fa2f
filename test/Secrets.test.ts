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
 * What a run accepts decides the paths covered. A password alone, auth mode with `--macosx` and secrets in a config
 * file are refused: those runs are checked on their refusal (output, state dir). Auth mode, the Grafana token and
 * the Slack token are accepted: a live run on process sandboxes in auth mode (the website and Prometheus behind the
 * auth proxy, which must let the password through and nobody without it; a fake Grafana that requires the token,
 * which proves it was read) and one on an ssh host carry them. The user name is no secret (the configuration dump
 * names it): it is passed, not searched for. The Slack token of the process-sandbox run also feeds its
 * Alertmanager (`--alert-handler slack`), whose loaded configuration is searched too.
 */
import { assert, describe } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { findMarked } from "../packages/localhost/src/internal/processTree.ts"
import { fakeGrafana, freePort, freeRange, liveWith, serveJson } from "../packages/monitoring/test/utils.ts"
import { SshKeys } from "../packages/ssh/src/index.ts"
import { fresh, root, start } from "./fixtures/Cli.ts"
import * as Integration from "./fixtures/Integration.ts"
import { listening } from "./fixtures/Listeners.ts"
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

/** The canaries in the body of `GET url` (from 127.0.0.1), with `headers` (credentials in auth mode). */
const inPage = async (url: string, headers: Record<string, string> = {}) => {
  const response = await fetch(url, { headers, signal: AbortSignal.timeout(10_000) })
  assert.strictEqual(response.status, 200, url)
  return search(url, await response.text())
}

/** An `Authorization` header for basic auth. */
const basic = (user: string, password: string) => ({
  authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`
})

/** The auth mode's user name (no secret). */
const authUser = `canary-user-${tag}`

/** Whether nothing listens on `port` of 127.0.0.1 now. */
const isFree = (port: number) =>
  new Promise<boolean>((resolve) => {
    const server = net.createServer()
    server.once("error", () => resolve(false))
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)))
  })

/** A free port whose + 10000 (where a service listens behind the auth proxy) is free too. */
const authPort = async (): Promise<number> => {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = await freePort()
    if (port + 10000 <= 65535 && await isFree(port + 10000)) return port
  }
  throw new Error("no free port p with p + 10000 free")
}

/** Ports of their own for the website, Prometheus (each with its + 10000 free, for auth mode) and the agents, and a snapshot path in `dir`. */
const monitoringArgs = async (dir: string) => {
  const exportPath = path.join(dir, "snapshot")
  const ports = { website: await authPort(), prometheus: await authPort() }
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
            ["--auth-password", canary.authPasswordFlag, "--macosx"],
            { TEZT_CLOUD_AUTH_USERNAME: authUser },
            /auth mode is not supported with --macosx/
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
    "auth mode on process sandboxes: 401 without the credentials, the services with them; no secret shown anywhere",
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
            "--auth-username",
            authUser,
            "--auth-password",
            canary.authPasswordFlag,
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
            const website = `http://127.0.0.1:${ports.website}`
            const prometheus = `http://127.0.0.1:${ports.prometheus}`
            // The usual ports are the auth proxy's: nothing without the credentials (or with a wrong password).
            for (const url of [`${website}/api/run`, `${prometheus}/api/v1/status/flags`]) {
              for (const headers of [{}, basic(authUser, "wrong"), basic("someone", canary.authPasswordFlag)]) {
                const response = await fetch(url, { headers, signal: AbortSignal.timeout(10_000) })
                assert.strictEqual(response.status, 401, url)
                assert.strictEqual(response.headers.get("www-authenticate"), `Basic realm="tezt-cloud"`)
              }
            }
            // The services themselves listen at their port + 10000, on 127.0.0.1 only; the proxy on their ports.
            const addresses = listening(cli.proc.pid!)
            for (const port of [ports.website, ports.prometheus]) {
              assert.deepStrictEqual(addresses.filter((a) => a.endsWith(`:${port + 10000}`)), [
                `127.0.0.1:${port + 10000}`
              ])
              assert.include(addresses, `127.0.0.1:${port}`)
            }
            const credentials = basic(authUser, canary.authPasswordFlag)
            return [
              ...inProcesses(children(cli.proc.pid!, namespace)),
              ...await inPage(`${website}/`, credentials),
              ...await inPage(`${website}/api/run`, credentials),
              ...await inPage(`${prometheus}/api/v1/status/config`, credentials),
              ...await inPage(`${prometheus}/api/v1/status/flags`, credentials),
              // Alertmanager listens on 127.0.0.1 only, not behind the auth proxy.
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
        "in auth mode, neither the commands sshd runs nor the processes of the account there carry them",
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
                "--auth-username",
                authUser,
                "--tezt-cloud",
                namespace,
                ...args
              ],
              // Auth mode, the password from the environment this time.
              { ...liveEnv(env), HOME: home, TEZT_CLOUD_AUTH_PASSWORD: canary.authPasswordEnv }
            )
            try {
              await cli.waitFor("ready for signal")
              const credentials = basic(authUser, canary.authPasswordEnv)
              found.push(
                ...inProcesses(children(cli.proc.pid!, namespace)),
                ...await inPage(`http://127.0.0.1:${ports.website}/`, credentials),
                ...await inPage(`http://127.0.0.1:${ports.website}/api/run`, credentials)
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
