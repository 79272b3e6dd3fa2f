/**
 * An example scenario, run by the README: a server agent serves HTTP on a port of its range, a client agent
 * queries it. Run it with
 *   TEZT_CLOUD_SCENARIOS=scenarios/examples/PingPong.ts ./tezt-cloud EXAMPLES ping --localhost --tezt-cloud demo
 */
import { Cloud, Scenario } from "@tezt-cloud/core"
import { Effect, Schedule } from "effect"
import { fileURLToPath } from "node:url"

export const pingPong = Scenario.make({
  title: "A client agent pings a server agent",
  tags: ["ping"],
  vms: [{ name: "server" }, { name: "client" }],
  run: Effect.gen(function*() {
    const cloud = yield* Cloud.Cloud
    const server = yield* cloud.agent("server")
    const client = yield* cloud.agent("client")
    // Ship the server's code to the agent (skipped next time if unchanged), take a port of its range, start it.
    const script = yield* server.copy(fileURLToPath(new URL("serve.mjs", import.meta.url)))
    const port = yield* server.nextAvailablePort
    yield* server.spawn("http", "node", [script, String(port)])
    // The daemon is up, but maybe not listening yet: retry the request for a while.
    const fetch = `fetch("http://127.0.0.1:${port}").then(r => r.text()).then(t => process.stdout.write(t))`
    const answer = yield* client.run("node", ["-e", fetch]).pipe(
      Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 50 })
    )
    yield* Effect.logInfo(`client got "${answer.trim()}" from server:${port}`)
    yield* cloud.pushMetric({ name: "example_pings_total", value: 1, type: "counter" })
  })
})

export const group = Scenario.group("EXAMPLES", "Example scenarios", [pingPong])
