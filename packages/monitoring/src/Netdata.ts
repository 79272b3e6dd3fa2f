/**
 * netdata on an agent (`--monitoring`, as in Tezt cloud): the Debian binary run as a daemon of the agent, owned by
 * the run's scope, with its own configuration and state directories in the agent's home, and scraped by
 * Prometheus at `/api/v1/allmetrics?format=prometheus&help=yes`, labelled `app=<agent>`.
 *
 * **Details**
 *
 * Tezt cloud runs one netdata per VM on port 19999. Agents here may share a machine (process sandboxes do), so
 * each netdata takes a port of its agent's range instead; with a VM per agent that is just another open port.
 * Plugins that need root or add nothing per agent (apps, cgroups, ebpf, python.d, go.d, …) are off, the database
 * is in memory, and the registry and cloud are disabled: the daemon stays small.
 */
import type { Agent, CloudError } from "@tezt-cloud/core"
import { Effect, type Scope } from "effect"
import * as Endpoints from "./Endpoints.ts"
import * as AgentDaemon from "./internal/agentDaemon.ts"
import type * as Prometheus from "./Prometheus.ts"

export interface Netdata {
  readonly agent: string
  readonly port: number
  readonly url: string
  /** Its Prometheus target. */
  readonly target: Prometheus.Target
}

/** netdata's configuration for an agent: everything under `dir`, listening on `bind:port`. */
export const config = (options: {
  readonly name: string
  readonly user: string
  readonly dir: string
  readonly bind: string
  readonly port: number
}) =>
  `# Written by tezt-cloud for agent ${options.name}.
[global]
  run as user = ${options.user}
  hostname = ${options.name}
[db]
  mode = ram
  retention = 3600
  update every = 1
[directories]
  config = ${options.dir}
  stock config = /usr/lib/netdata/conf.d
  log = ${options.dir}/log
  cache = ${options.dir}/cache
  lib = ${options.dir}/lib
  home = ${options.dir}
  lock = ${options.dir}/lock
[logs]
  debug log = none
  error log = ${options.dir}/log/error.log
  access log = none
[web]
  bind to = ${options.bind}:${options.port}
[registry]
  enabled = no
[health]
  enabled = no
[ml]
  enabled = no
[cloud]
  enabled = no
[plugins]
${
    ["apps", "cgroups", "python.d", "charts.d", "go.d", "node.d", "ebpf", "tc", "idlejitter", "statsd", "fping"]
      .concat(["ioping", "perf", "slabinfo", "nfacct", "cups", "freeipmi", "diskspace"])
      .map((p) => `  ${p} = no`).join("\n")
  }
`

/** The Prometheus job of every agent's netdata. */
export const job = (netdatas: ReadonlyArray<Netdata>): Prometheus.Job => ({
  name: "netdata",
  metricsPath: "/api/v1/allmetrics",
  params: { format: ["prometheus"], help: ["yes"] },
  targets: netdatas.map((n) => n.target)
})

const service = "netdata"

/** Starts netdata on `agent` in the current scope and waits until it answers. */
export const start = Effect.fn("Netdata.start")(function*(
  agent: Agent.Agent
): Effect.fn.Return<Netdata, CloudError.CloudError, Scope.Scope> {
  const binary = yield* AgentDaemon.locate(service, agent, "netdata", "--monitoring")
  const port = yield* agent.nextAvailablePort
  const home = (yield* agent.run("sh", ["-c", "pwd"])).trim()
  const dir = `${home}/netdata`
  const host = Endpoints.agentHost(agent)
  const user = (yield* agent.run("id", ["-un"])).trim()
  const text = config({ name: agent.name, user, dir, bind: host === "127.0.0.1" ? "127.0.0.1" : "0.0.0.0", port })
  yield* agent.run("sh", [
    "-c",
    "mkdir -p \"$1/log\" \"$1/cache\" \"$1/lib\" \"$1/lock\" && printf '%s' \"$2\" > \"$1/netdata.conf\"",
    "sh",
    dir,
    text
  ])
  const daemon = yield* agent.spawn(service, binary, ["-D", "-c", `${dir}/netdata.conf`])
  const url = `http://${host}:${port}`
  yield* AgentDaemon.waitReady(service, agent, `${url}/api/v1/info`, daemon.isRunning, daemon.logFile)
  return { agent: agent.name, port, url, target: { address: `${host}:${port}`, labels: { app: agent.name } } }
})
