/**
 * What each run of the fault suite does, drawn from one seed: which fault, on which scenario, at which point of
 * the run (an event line of its `--json` output, its n-th occurrence, then a small delay). The suite's seed is
 * `$TEZT_CLOUD_FAULT_SEED` when set, else a random one; it is printed, and a run's plan depends only on the seed,
 * its backend and its index, so that one failing run can be replayed alone (`$TEZT_CLOUD_FAULT_ONLY`).
 */
import { Network } from "@tezt-cloud/core"

export type Backend = "process" | "ssh-host" | "docker" | "gcp" | "proxy"

/** The signals delivered to the CLI (a double SIGINT is a second one while the first's teardown runs). */
export type SignalFault = "SIGINT" | "double SIGINT" | "SIGTERM" | "SIGHUP" | "SIGKILL"

/**
 * The faults: signals, and the special ones: the agents' ssh host killed (its sshd and every session), a VM
 * killed (its host fails under the run), the sshd of the host or VM stopped (SIGSTOP) while a command runs, a
 * daemon that ignores SIGTERM, the artifacts disk full, a scenario whose finalizer fails; with a proxy, its machine
 * killed mid-run and the client's connection to it dropped.
 */
export type Fault =
  | SignalFault
  | "host killed"
  | "VM killed"
  | "sshd stopped"
  | "daemon ignores SIGTERM"
  | "artifacts disk full"
  | "finalizer fails"
  | "proxy killed"
  | "connection dropped"

export const signalFaults: ReadonlyArray<SignalFault> = ["SIGINT", "double SIGINT", "SIGTERM", "SIGHUP", "SIGKILL"]

export type Phase = "deploy" | "body" | "teardown"

/** An event line of the run's `--json` output: its type, or `log <message>` for a log line. */
export type EventKey = string

/** Where a fault hits: once the `nth` event `event` is printed, plus `delayMillis`. */
export interface Point {
  readonly phase: Phase
  readonly event: EventKey
  readonly nth: number
  readonly delayMillis: number
}

export interface Plan {
  readonly backend: Backend
  /** Its position among its backend's runs. */
  readonly index: number
  /** The run's own seed, from the suite's, its backend and its index. */
  readonly seed: number
  readonly fault: Fault
  /** The tags of its scenario in `FaultScenarios.ts`. */
  readonly tags: ReadonlyArray<string>
  readonly agents: number
  /** Where the fault hits; `undefined`: nowhere (a run left to end on its own, e.g. on a full disk). */
  readonly point: Point | undefined
  /** The signal delivered at `point` (none for a fault that is not a signal and needs none). */
  readonly signal: NodeJS.Signals | undefined
  /** For a double SIGINT: the second one's delay after the first; for a stopped sshd: the SIGINT's after. */
  readonly thenMillis: number
  /** For a full disk: the size of the artifacts' file system, in KiB. */
  readonly diskKib: number
}

/** A 32-bit generator of numbers in [0, 1) (mulberry32): small, and the same on every machine. */
export const random = Network.seeded

/** A 32-bit hash of strings (FNV-1a), to derive a run's seed. */
const hash = (...parts: ReadonlyArray<string | number>) => {
  let h = 0x811c9dc5
  for (const char of parts.join("/")) {
    h ^= char.charCodeAt(0)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/** The suite's seed: `$TEZT_CLOUD_FAULT_SEED`, else a fresh one. */
export const suiteSeed = (env: Readonly<Record<string, string | undefined>> = process.env): number => {
  const given = env.TEZT_CLOUD_FAULT_SEED
  if (given === undefined || given === "") return Math.floor(Math.random() * 2 ** 31)
  const seed = Number(given)
  if (!Number.isInteger(seed) || seed < 0) {
    throw new Error(`TEZT_CLOUD_FAULT_SEED=${given}: give a non-negative integer (the seed a run printed)`)
  }
  return seed
}

/**
 * The event lines of each phase of a run of `agents` agents, each with how many times it is printed. A proxy run
 * shows its proxy's `agent-ready` first (then the run there starts): its deploy points include the making of the
 * proxy, from that moment to the run's start.
 */
export const events = (
  agents: number,
  backend?: Backend
): Record<Phase, ReadonlyArray<readonly [EventKey, number]>> => ({
  deploy: backend === "proxy"
    ? [["agent-ready", 1], ["run-start", 1], ["deploy-start", 1], ["agent-ready", agents + 1]]
    : [["run-start", 1], ["deploy-start", 1], ["agent-ready", agents]],
  body: [["deploy-done", 1], ["daemon-up", agents], ["log daemons started", 1], ["exec", 1]],
  teardown: [["run-end", 1], ["daemon-down", agents], ["teardown-start", 1], ["agent-down", agents]]
})

/** The longest delay after a point's event, per phase: deploys and bodies last longer than teardowns. */
const maxDelay: Record<Phase, number> = { deploy: 150, body: 400, teardown: 40 }

/** A proxy's deploy lasts seconds after its `agent-ready`: the points spread over them. */
const proxyDeployDelay = 3000

const pick = <A>(draw: () => number, values: ReadonlyArray<A>): A => values[Math.floor(draw() * values.length)]!

/** A point of a run of `agents` agents, in one of `phases`. */
const point = (draw: () => number, agents: number, phases: ReadonlyArray<Phase>, backend?: Backend): Point => {
  const phase = pick(draw, phases)
  const [event, count] = pick(draw, events(agents, backend)[phase])
  const nth = 1 + Math.floor(draw() * count)
  const longest = backend === "proxy" && phase === "deploy" && event === "agent-ready" && nth === 1
    ? proxyDeployDelay
    : maxDelay[phase]
  return { phase, event, nth, delayMillis: Math.floor(draw() * longest) }
}

const phases: ReadonlyArray<Phase> = ["deploy", "body", "teardown"]

/** The plan of the `index`-th run of `fault` on `backend` under the suite's `seed`. */
export const plan = (seed: number, backend: Backend, fault: Fault, index: number): Plan => {
  const own = hash(seed, backend, fault, index)
  const draw = random(own)
  const agents = draw() < 0.5 ? 1 : 2
  const count = agents === 1 ? "one" : "two"
  const base = { backend, index, seed: own, fault, agents, thenMillis: 0, diskKib: 0 }
  switch (fault) {
    case "host killed":
    case "VM killed":
      // While the run uses the host: its daemons are up or its command runs.
      return {
        ...base,
        tags: ["run", count, "plain"],
        point: point(draw, agents, ["body"], backend),
        signal: undefined
      }
    case "sshd stopped":
      // While a command runs (`sleep 0.4`); the user gives up a moment later.
      return {
        ...base,
        tags: ["run", count, "plain"],
        point: { phase: "body", event: "exec", nth: 1, delayMillis: Math.floor(draw() * 200) },
        signal: "SIGINT",
        thenMillis: 100 + Math.floor(draw() * 900)
      }
    case "proxy killed":
    case "connection dropped":
      // The proxy's machine goes while the run uses it (its body or teardown); or the client's connection to it is
      // cut (in its deploy or body): the run goes on there, the client reconnects.
      return {
        ...base,
        tags: ["run", count, "plain"],
        point: point(draw, agents, fault === "proxy killed" ? ["body", "teardown"] : ["deploy", "body"], backend),
        signal: undefined
      }
    case "daemon ignores SIGTERM":
      return {
        ...base,
        tags: ["run", count, "stubborn"],
        point: point(draw, agents, phases, backend),
        signal: pick(draw, ["SIGINT", "SIGTERM", "SIGHUP"] as const)
      }
    case "artifacts disk full":
      // Sizes from "not even the configuration fits" to "the whole run fits".
      return {
        ...base,
        agents: 1,
        tags: ["chatty"],
        point: undefined,
        signal: undefined,
        diskKib: 4 + 4 * Math.floor(draw() * 16)
      }
    case "finalizer fails": {
      // Half of them also interrupted somewhere, half left to end on their own.
      const interrupted = draw() < 0.5
      return {
        ...base,
        agents: 2,
        tags: ["finalizer"],
        point: interrupted ? point(draw, 2, phases, backend) : undefined,
        signal: interrupted ? "SIGINT" : undefined
      }
    }
    default: {
      const signal = fault === "double SIGINT" ? "SIGINT" : fault
      return {
        ...base,
        tags: ["run", count, "plain"],
        point: point(draw, agents, phases, backend),
        signal,
        thenMillis: fault === "double SIGINT" ? 20 + Math.floor(draw() * 480) : 0
      }
    }
  }
}

/** One line that says what a plan does, for failures and logs. */
export const describe = (p: Plan) =>
  `${p.backend} #${p.index} ${p.fault} (${p.tags.join(" ")}` +
  (p.point === undefined ? "" : `; at ${p.point.event} #${p.point.nth} + ${p.point.delayMillis} ms`) +
  (p.thenMillis > 0 ? `; then ${p.thenMillis} ms` : "") +
  (p.diskKib > 0 ? `; ${p.diskKib} KiB disk` : "") + ")"
