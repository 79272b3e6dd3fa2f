/**
 * The run's Alertmanager: Debian's `prometheus-alertmanager` run as a scoped daemon on this machine, to which the
 * run's Prometheus sends its firing alerts, and which notifies the receivers (Slack, webhooks) per its generated
 * configuration, reloaded (SIGHUP) on every change.
 *
 * **Details**
 *
 * It listens on a loopback address only (its API has no authentication: anyone could silence alerts or read the
 * receivers), with clustering off (no gossip port on the network). Its private dir (mode 0700, in the system's
 * temporary dir) holds its state and the secrets the configuration names (`credentialsFile`, each 0600: Slack's
 * bot token never is on a command line, in the configuration, a log or the artifacts); it is recorded in the
 * ledger (kind `alertmanager-storage`) before it exists, removed when the scope closes, and by `CLOUD clean up`
 * after a `kill -9`. The configuration and the log go to `dir` (the run's artifacts).
 */
import { AtomicFile, CloudError } from "@tezt-cloud/core"
import { Context, Effect, Semaphore } from "effect"
import * as path from "node:path"
import * as Binaries from "./internal/binaries.ts"
import * as Daemon from "./internal/daemon.ts"

export class Alertmanager extends Context.Service<Alertmanager, {
  /** Where its API answers, e.g. `http://127.0.0.1:9093`. */
  readonly url: string
  /** `host:port`, as Prometheus' `alerting` names it. */
  readonly address: string
  readonly pid: number
  /** Replaces its configuration and reloads; returns once loaded. A refusal is an error, and rolled back. */
  configure(text: string): Effect.Effect<void, CloudError.CloudError>
  /** Writes (or replaces) the secret `name` into its 0600 file of the private dir (`secretFile(name)`). */
  writeSecret(name: string, value: string): Effect.Effect<void, CloudError.CloudError>
  /** Where the secret `name` is kept, as a configuration names it (`credentials_file`, `api_url_file`). */
  secretFile(name: string): string
}>()("@tezt-cloud/monitoring/Alertmanager") {}

export interface Options {
  /** Address to listen on: a loopback one, anything else is refused. */
  readonly host: string
  readonly port: number
  /** Where `alertmanager.yml` and `alertmanager.log` go (the run's artifacts). */
  readonly dir: string
  readonly namespace: string
  /** Secrets written each to its own 0600 file of the private dir, by name, before it starts. */
  readonly secrets?: Record<string, string> | undefined
  /** The first configuration, given where each secret is kept (`secretFile`). */
  readonly config: (secretFile: (name: string) => string) => string
}

const service = "alertmanager"

const storage: Daemon.Storage = {
  kind: "alertmanager-storage",
  service,
  name: "Alertmanager",
  argument: (dir) => `--storage.path=${dir}`
}

/** Starts Alertmanager in the current scope and waits until it is ready. */
export const start = Effect.fn("Alertmanager.start")(function*(
  options: Options
): Effect.fn.Return<Alertmanager["Service"], CloudError.CloudError, Daemon.Needs> {
  yield* Daemon.requireLoopback(service, options.host, "its API has no authentication")
  const binary = yield* Binaries.require(
    service,
    "prometheus-alertmanager",
    "install Debian's prometheus-alertmanager package"
  )
  const configFile = path.join(options.dir, "alertmanager.yml")
  const write = (text: string) => Daemon.writeFile(service, configFile, text)
  const dataDir = yield* Daemon.privateDir(storage, options.namespace)
  const secretFile = (name: string) => path.join(dataDir, `${name}.secret`)
  const writeSecret = (name: string, value: string) =>
    Effect.try({
      try: () => AtomicFile.writeAtomic(secretFile(name), value, 0o600),
      // Never the value in the message.
      catch: (e) => CloudError.service(service, `cannot write its ${name} file: ${CloudError.messageOf(e)}`)
    })
  for (const [name, value] of Object.entries(options.secrets ?? {})) yield* writeSecret(name, value)
  let current = options.config(secretFile)
  yield* write(current)
  const listen = Daemon.listenAddress(options.host, options.port)
  const url = `http://${listen}`
  const daemon = yield* Daemon.spawn({
    service,
    command: binary,
    args: [
      `--config.file=${configFile}`,
      storage.argument(dataDir),
      `--web.listen-address=${listen}`,
      `--web.external-url=${url}`,
      // No cluster: its gossip port would listen on every interface.
      "--cluster.listen-address="
    ],
    logFile: path.join(options.dir, "alertmanager.log"),
    namespace: options.namespace
  })
  yield* Daemon.waitListening(service, `${url}/-/ready`, daemon, listen, " (it is --prometheus-port + 3)")
  const lock = yield* Semaphore.make(1)
  const reload = Daemon.reload(service, daemon, url, "alertmanager")
  const configure = Effect.fn("Alertmanager.configure")(
    function*(text: string) {
      const before = current
      yield* Daemon.changeOrUndo(
        Effect.sync(() => void (current = text)),
        Effect.sync(() => void (current = before)),
        Effect.suspend(() => write(current)).pipe(Effect.andThen(reload))
      )
    },
    (effect) => lock.withPermit(effect)
  )
  return Alertmanager.of({ url, address: listen, pid: daemon.pid, configure, writeSecret, secretFile })
})

/**
 * Finishes what killed runs of the namespace left of their Alertmanager (`CLOUD clean up`): stops the one still
 * using a recorded private dir, removes the dir (and the secrets in it) and releases the record.
 */
export const cleanUp = Effect.fn("Alertmanager.cleanUp")(function*() {
  return yield* Daemon.cleanUp(storage)
})
