/**
 * `prometheus-process-exporter` on an agent (`--process-monitoring`, as in Tezt cloud): it reports CPU, memory,
 * file descriptors, … of the processes of the binaries registered with `Cloud.registerBinary`.
 *
 * **Details**
 *
 * The exporter takes the agent's first free port when the stack starts, before the scenario asks for any
 * (`nextAvailablePort` hands out the ones after it), but only runs once a binary is registered: it has nothing to report before. Each new binary restarts it
 * with the new `-procnames` list, on the same port; the Prometheus job `<agent>:prometheus-process-exporter` is
 * added with the first one.
 */
import { type Agent, CloudError } from "@tezt-cloud/core"
import { Effect, Exit, Scope, Semaphore } from "effect"
import * as Endpoints from "./Endpoints.ts"
import * as AgentDaemon from "./internal/agentDaemon.ts"
import type * as Prometheus from "./Prometheus.ts"

export interface ProcessExporter {
  readonly agent: string
  readonly port: number
  readonly url: string
  /** The registered binaries, as `group/name`. */
  readonly binaries: Effect.Effect<ReadonlyArray<string>>
  /** Adds a binary and restarts the exporter; `true` when it is the agent's first (its job must be added). */
  register(binary: { readonly group: string; readonly name: string }): Effect.Effect<boolean, CloudError.CloudError>
  /** Its Prometheus job. */
  readonly job: Prometheus.Job
}

const service = "prometheus-process-exporter"

/** Prepares the exporter of `agent` (binary checked, port taken) in the current scope. */
export const make = Effect.fn("ProcessExporter.make")(function*(
  agent: Agent.Agent
): Effect.fn.Return<ProcessExporter, CloudError.CloudError, Scope.Scope> {
  const executable = yield* AgentDaemon.locate(service, agent, service, "--process-monitoring")
  const port = yield* agent.nextAvailablePort
  const host = Endpoints.agentHost(agent)
  const url = `http://${host}:${port}`
  const parent = yield* Effect.scope
  const lock = yield* Semaphore.make(1)
  const binaries: Array<{ readonly group: string; readonly name: string }> = []
  let running: Scope.Closeable | undefined

  const restart = Effect.gen(function*() {
    if (running !== undefined) yield* Scope.close(running, Exit.void)
    const scope = yield* Scope.fork(parent)
    running = scope
    const names = [...new Set(binaries.map((b) => b.name))].join(",")
    const listen = `${host === "127.0.0.1" ? "127.0.0.1" : ""}:${port}`
    const daemon = yield* agent.spawn(service, executable, ["-web.listen-address", listen, "-procnames", names]).pipe(
      Scope.provide(scope)
    )
    yield* AgentDaemon.waitReady(service, agent, `${url}/metrics`, daemon.isRunning, daemon.logFile)
  })

  const register = Effect.fn("ProcessExporter.register")(
    function*(binary: { readonly group: string; readonly name: string }) {
      if (binary.name.includes(",") || binary.name.trim() === "") {
        return yield* CloudError.service("registerBinary", `${JSON.stringify(binary.name)} is not a process name`)
      }
      if (binaries.some((b) => b.name === binary.name && b.group === binary.group)) return false
      const first = binaries.length === 0
      binaries.push(binary)
      yield* restart
      return first
    },
    (effect) => lock.withPermit(effect)
  )

  return {
    agent: agent.name,
    port,
    url,
    binaries: Effect.sync(() => binaries.map((b) => `${b.group}/${b.name}`)),
    register,
    job: {
      name: `${agent.name}:prometheus-process-exporter`,
      metricsPath: "/metrics",
      targets: [{ address: `${host}:${port}`, labels: { app: agent.name } }]
    }
  }
})
