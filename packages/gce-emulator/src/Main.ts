/**
 * `npm run gcp-emulator -- [options]`: serves the emulated Compute API, prints its URL (`http://127.0.0.1:P`,
 * what `TEZT_CLOUD_GCP_ENDPOINT` takes) on stdout once it is ready, and runs until SIGINT or SIGTERM, when it
 * removes every host it realized and exits. Logs go to stderr.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { DockerClient } from "@tezt-cloud/docker"
import { Effect, Layer, Logger } from "effect"
import * as util from "node:util"
import * as AddressPool from "./AddressPool.ts"
import * as DockerHosts from "./DockerHosts.ts"
import * as Emulator from "./Emulator.ts"
import * as Faults from "./Faults.ts"
import * as Hosts from "./Hosts.ts"

export const usage = `usage: npm run gcp-emulator -- [options]

  --port P                         listen on 127.0.0.1:P (default 8086; 0: any free port)
  --host ADDRESS                   listen on ADDRESS instead of 127.0.0.1
  --vm-port P                      the port of each instance's sshd (default 30000, the agents' --vm-base-port)
  --addresses FIRST-LAST           the instances' loopback addresses (default 127.0.0.2-127.0.0.254)
  --no-hosts                       realize no host: the API alone, no Docker needed
  --image REF                      run hosts from REF instead of building dockerfiles/debian.Dockerfile
  --dockerfiles DIR                where debian.Dockerfile is (default $TEZT_CLOUD_DOCKERFILES or ./dockerfiles)
  --id NAME                        names and labels the emulator's containers (default gce-<pid>)
  --quota-exceeded-on-insert N,…   these instances.insert calls (1-based) fail with QUOTA_EXCEEDED
  --operation-delay MS             Operations stay RUNNING MS milliseconds after their work
  --instance-failure-after S       instances' hosts are killed S seconds after RUNNING (TERMINATED)
  --help`

export interface Options {
  readonly emulator: Emulator.Options
  readonly hosts: "docker" | "none"
  readonly docker: DockerHosts.Options
  readonly faults: Faults.Config
}

/** A bad option: the message names it and the fix. */
export class UsageError extends Error {}

const integer = (option: string, text: string | undefined, fallback: number, max = Number.MAX_SAFE_INTEGER) => {
  if (text === undefined) return fallback
  const n = Number(text)
  if (!/^\d+$/.test(text) || n > max) throw new UsageError(`--${option}: '${text}' is not an integer in 0..${max}`)
  return n
}

/** The options of `argv`; throws a `UsageError`. */
export const parse = (argv: ReadonlyArray<string>, pid = process.pid): Options | "help" => {
  const { values, positionals } = util.parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: false,
    options: {
      port: { type: "string" },
      host: { type: "string" },
      "vm-port": { type: "string" },
      addresses: { type: "string" },
      "no-hosts": { type: "boolean" },
      image: { type: "string" },
      dockerfiles: { type: "string" },
      id: { type: "string" },
      "quota-exceeded-on-insert": { type: "string" },
      "operation-delay": { type: "string" },
      "instance-failure-after": { type: "string" },
      help: { type: "boolean" }
    }
  })
  const known = new Set([
    "port",
    "host",
    "vm-port",
    "addresses",
    "no-hosts",
    "image",
    "dockerfiles",
    "id",
    "quota-exceeded-on-insert",
    "operation-delay",
    "instance-failure-after",
    "help"
  ])
  for (const key of Object.keys(values)) {
    if (!known.has(key)) throw new UsageError(`--${key}: unknown option (see --help)`)
  }
  if (positionals.length > 0) throw new UsageError(`${positionals[0]}: unexpected argument (see --help)`)
  if (values.help === true) return "help"
  const text = (key: string) => {
    const v = values[key]
    if (v === true) throw new UsageError(`--${key}: needs a value`)
    return v as string | undefined
  }
  const vmPort = integer("vm-port", text("vm-port"), 30000, 65535)
  let addresses: AddressPool.Range | undefined
  const range = text("addresses")
  if (range !== undefined) {
    try {
      addresses = AddressPool.parseRange(range)
    } catch (e) {
      throw new UsageError(`--addresses: ${(e as Error).message}`)
    }
  }
  const quota = text("quota-exceeded-on-insert")
  const id = text("id") ?? `gce-${pid}`
  if (!/^[a-z0-9][a-z0-9_.-]*$/.test(id)) {
    throw new UsageError(`--id: '${id}' must be lowercase letters, digits, '.', '_' or '-'`)
  }
  const delay = text("operation-delay")
  const failure = text("instance-failure-after")
  return {
    emulator: { host: text("host"), port: integer("port", text("port"), 8086, 65535), addresses },
    hosts: values["no-hosts"] === true ? "none" : "docker",
    docker: { id, port: vmPort, image: text("image"), dockerfiles: text("dockerfiles") },
    faults: {
      ...(quota === undefined ? {} : {
        quotaExceededOnInsert: quota.split(",").map((n) => {
          const i = integer("quota-exceeded-on-insert", n.trim(), 0)
          if (i < 1) throw new UsageError("--quota-exceeded-on-insert: ordinals start at 1")
          return i
        })
      }),
      ...(delay === undefined ? {} : { operationDelayMillis: integer("operation-delay", delay, 0) }),
      ...(failure === undefined ? {} : { instanceFailureAfterSeconds: integer("instance-failure-after", failure, 0) })
    }
  }
}

/** Logs on stderr, one line each: stdout carries only the URL. */
const stderrLogger = Logger.make<unknown, void>(({ message }) => {
  const parts = Array.isArray(message) ? message : [message]
  process.stderr.write(`gcp-emulator: ${parts.map((m) => typeof m === "string" ? m : JSON.stringify(m)).join(" ")}\n`)
})

/** Serves until interrupted; the URL goes to stdout once ready. */
export const run = (options: Options) =>
  Effect.gen(function*() {
    const { url } = yield* Emulator.serve(options.emulator)
    process.stdout.write(`${url}\n`)
    yield* Effect.logInfo(`Compute API at ${url} (hosts: ${options.hosts}); Ctrl+C stops it`)
    return yield* Effect.never
  }).pipe(
    Effect.scoped,
    Effect.provide(
      Layer.mergeAll(
        options.hosts === "none"
          ? Hosts.layerNone(options.docker.port)
          : DockerHosts.layer(options.docker).pipe(Layer.provide(DockerClient.layer())),
        Faults.Faults.layer(options.faults)
      ).pipe(Layer.provideMerge(Logger.layer([stderrLogger])))
    )
  )

export const main = (argv: ReadonlyArray<string>) => {
  let options: Options | "help"
  try {
    options = parse(argv)
  } catch (e) {
    process.stderr.write(`gcp-emulator: error: ${(e as Error).message}\n`)
    process.exitCode = 2
    return
  }
  if (options === "help") {
    process.stdout.write(`${usage}\n`)
    return
  }
  NodeRuntime.runMain(
    run(options).pipe(
      Effect.catch((e) =>
        Effect.sync(() => {
          process.stderr.write(`gcp-emulator: error: ${e.message}\n`)
          process.exitCode = 1
        })
      )
    ),
    { disableErrorReporting: true }
  )
}
