/**
 * The clock-skew checks every backend's agents pass (`Agent.setFaketime`, `--faketime`): a command and a daemon
 * started under a spec see the wall clock moved by it, a new spec applies to the next commands, and no spec gives
 * the real clock back. Observed through the agent itself (`date`, `cat`), so the same checks hold on localhost,
 * over ssh and in containers.
 */
import { assert } from "@effect/vitest"
import type { Agent } from "@tezt-cloud/core"
import { Effect } from "effect"
import { eventually } from "./RunnerContract.ts"

const day = 86_400
/** Slack for the seconds between `date` on the agent and here (a loaded machine, a slow ssh round trip). */
const slack = 120

/** How far ahead of this machine's clock the agent's `date` is, in seconds. */
export const offsetOf = (agent: Agent.Agent) =>
  agent.run("date", ["-u", "+%s"]).pipe(Effect.map((out) => Number(out.trim()) - Date.now() / 1000))

/** Checks `agent`, whose clock is `initialDays` days off now, then moves it (see the module's header). */
export const clockSkewChecks = (agent: Agent.Agent, initialDays: number) =>
  Effect.gen(function*() {
    assert.approximately(yield* offsetOf(agent), initialDays * day, slack, "a command sees the skewed clock")
    const daemon = yield* agent.spawn("clock", "date", ["-u", "+%s"])
    const printed = () => agent.run("cat", [daemon.logFile]).pipe(Effect.map((text) => text.trim()))
    yield* eventually("the daemon printed its date", Effect.map(printed(), (text) => text !== ""))
    const seen = Number(yield* printed()) - Date.now() / 1000
    assert.approximately(seen, initialDays * day, slack, "a daemon sees the skewed clock")
    yield* agent.setFaketime("+1d")
    assert.approximately(yield* offsetOf(agent), day, slack, "a new spec applies to the next commands")
    yield* agent.setFaketime(undefined)
    assert.approximately(yield* offsetOf(agent), 0, slack, "no spec: the real clock")
  })
