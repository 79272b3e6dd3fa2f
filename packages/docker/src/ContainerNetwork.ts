/**
 * Network faults (`NetworkFaults.Faults`) for Docker agents on a network of their own (`--no-docker-host-network`):
 * each container has its own network namespace, where queueing disciplines and routes touch no one else, so
 * faults are set inside it (the containers run with `NET_ADMIN`, their image has iproute2).
 *
 * **Details**
 *
 * - Delay, jitter and loss: a `netem` qdisc on the container's `eth0`, where the kernel has netem (looked for in
 *   the first agent's namespace); refused, naming why, where it has not.
 * - Bandwidth: `tbf` on `eth0` (with netem: netem's own `rate`). One root qdisc per container holds every active
 *   fault of the agent, and is rewritten when one starts or ends.
 * - Partitions: blackhole routes to the addresses of the other groups' agents, in each agent's namespace.
 * - Ledger: each agent's qdisc and each route are recorded before they exist; they live in the container, so
 *   removing it (the run's teardown, or `CLOUD clean up`) removes them, and clean up releases their records.
 */
import { type Agent, CloudError, Ledger, type NetworkFaults, RunEvents } from "@tezt-cloud/core"
import { Effect, Semaphore } from "effect"

/** The ledger kinds of this module. */
export const kinds: ReadonlyArray<string> = ["container-qdisc", "container-route"]

interface Shaping {
  readonly delays: Map<number, readonly [number, number]>
  readonly losses: Map<number, number>
  readonly caps: Map<number, number>
}

/** The root qdisc of `eth0` that realizes `shaping` (`tc qdisc replace …` arguments), or none for nothing. */
export const qdiscOf = (shaping: Shaping, netem: boolean): ReadonlyArray<string> | undefined => {
  let millis = 0
  let jitter = 0
  for (const [d, j] of shaping.delays.values()) {
    millis += d
    jitter += j
  }
  // Losses combine as independent drops.
  const kept = [...shaping.losses.values()].reduce((k, p) => k * (1 - p / 100), 1)
  const loss = Math.round((1 - kept) * 10000) / 100
  const rate = shaping.caps.size === 0 ? undefined : Math.min(...shaping.caps.values())
  if (shaping.delays.size + shaping.losses.size === 0) {
    if (rate === undefined) return undefined
    // Bytes per second, as tc's own unit ("bps" is bytes per second for tc).
    return ["tbf", "rate", `${Math.round(rate)}bps`, "burst", "16kb", "latency", "500ms"]
  }
  if (!netem) return undefined
  return [
    "netem",
    "delay",
    `${millis}ms`,
    ...(jitter > 0 ? [`${jitter}ms`] : []),
    ...(loss > 0 ? ["loss", `${loss}%`] : []),
    ...(rate === undefined ? [] : ["rate", `${Math.round(rate)}bps`])
  ]
}

/** The faults of a deployment of `agents`, each on a network of its own, in the current scope. */
export const make = Effect.fn("ContainerNetwork.make")(function*(options: {
  readonly namespace: string
  readonly agents: ReadonlyArray<Agent.Agent>
}) {
  const ledger = yield* Ledger.Ledger
  const events = yield* RunEvents.RunEvents
  const lock = yield* Semaphore.make(1)
  const shapings = new Map<string, Shaping>()
  const routes = new Map<string, number>()
  let nextId = 0
  let netem: boolean | undefined

  const probe = Effect.gen(function*() {
    if (netem !== undefined) return netem
    const first = options.agents[0]
    if (first === undefined) return false
    const result = yield* first.exec("sh", [
      "-c",
      "tc qdisc add dev lo root netem delay 1ms && tc qdisc del dev lo root"
    ])
    netem = result.exitCode === 0
    return netem
  })

  const shapingOf = (agent: Agent.Agent) => {
    const known = shapings.get(agent.name)
    if (known !== undefined) return known
    const made: Shaping = { delays: new Map(), losses: new Map(), caps: new Map() }
    shapings.set(agent.name, made)
    return made
  }

  /** Rewrites the agent's root qdisc from its active faults. */
  const apply = (agent: Agent.Agent) =>
    Effect.gen(function*() {
      const args = qdiscOf(shapingOf(agent), yield* probe)
      const id = `container-qdisc:${options.namespace}:${agent.name}`
      if (args === undefined) {
        yield* agent.exec("tc", ["qdisc", "del", "dev", "eth0", "root"])
        yield* ledger.release(id)
        return
      }
      yield* ledger.acquire({ id, kind: "container-qdisc", data: { agent: agent.name, qdisc: args.join(" ") } })
      yield* agent.run("tc", ["qdisc", "replace", "dev", "eth0", "root", ...args])
    })

  /** Adds one fault to the agent's qdisc until the current scope closes. */
  const shaped = <V>(
    agent: Agent.Agent,
    fault: string,
    pick: (s: Shaping) => Map<number, V>,
    value: V,
    needsNetem: boolean
  ) =>
    Effect.gen(function*() {
      if (needsNetem && !(yield* probe)) {
        return yield* CloudError.notAvailable(
          `network ${fault} on Docker agents on a network of their own`,
          "the kernel has no netem (tc qdisc … netem fails): use --docker-host-network, where a relay delays"
        )
      }
      const id = nextId++
      yield* Effect.acquireRelease(
        lock.withPermits(1)(Effect.suspend(() => {
          pick(shapingOf(agent)).set(id, value)
          return apply(agent)
        })).pipe(Effect.tap(() => events.emit({ type: "network", agent: agent.name, fault: `${fault} (tc)` }))),
        () =>
          lock.withPermits(1)(Effect.suspend(() => {
            pick(shapingOf(agent)).delete(id)
            return apply(agent)
          })).pipe(
            Effect.andThen(events.emit({ type: "network", agent: agent.name, fault: `${fault} undone` })),
            Effect.ignore
          )
      )
    })

  const blackhole = (from: Agent.Agent, to: Agent.Agent) =>
    Effect.gen(function*() {
      const address = to.point?.host
      if (address === undefined) {
        return yield* CloudError.notAvailable(`network partition`, `agent ${to.name} has no address`)
      }
      const key = `${from.name}>${address}`
      const id = `container-route:${options.namespace}:${key}`
      yield* Effect.acquireRelease(
        lock.withPermits(1)(Effect.gen(function*() {
          const n = routes.get(key) ?? 0
          routes.set(key, n + 1)
          if (n > 0) return
          yield* ledger.acquire({ id, kind: "container-route", data: { agent: from.name, blackhole: address } })
          yield* from.run("ip", ["route", "add", "blackhole", `${address}/32`])
        })),
        () =>
          lock.withPermits(1)(Effect.gen(function*() {
            const n = (routes.get(key) ?? 1) - 1
            if (n > 0) return void routes.set(key, n)
            routes.delete(key)
            yield* from.run("ip", ["route", "del", "blackhole", `${address}/32`])
            yield* ledger.release(id)
          })).pipe(Effect.ignore)
      )
    })

  const faults: NetworkFaults.Faults = {
    mechanisms: Effect.map(probe, (has) => [
      `network faults on Docker agents on a network of their own: in each container's namespace, ${
        has ? "delay, jitter and loss by netem" : "no delay, jitter nor loss (no netem in this kernel)"
      }, bandwidth caps by ${has ? "netem's rate" : "tbf"}, partitions by blackhole routes`
    ]),
    delay: (agent, value) =>
      shaped(
        agent,
        `delay ${value.millis} ms ± ${value.jitterMillis} ms`,
        (s) => s.delays,
        [value.millis, value.jitterMillis] as const,
        true
      ),
    loss: (agent, percent) => shaped(agent, `loss ${percent}%`, (s) => s.losses, percent, true),
    bandwidth: (agent, bytesPerSecond) =>
      shaped(agent, `bandwidth ${bytesPerSecond} B/s`, (s) => s.caps, bytesPerSecond, false),
    partition: (groups) =>
      Effect.gen(function*() {
        for (const [i, group] of groups.entries()) {
          const others = groups.filter((_, j) => j !== i).flat()
          for (const from of group) for (const to of others) yield* blackhole(from, to)
        }
        const names = groups.map((g) => `[${g.map((a) => a.name).join(", ")}]`).join(" | ")
        const all = groups.flat().map((a) => a.name).join(" ")
        yield* Effect.acquireRelease(
          events.emit({ type: "network", agent: all, fault: `partition ${names} (routes)` }),
          () => events.emit({ type: "network", agent: all, fault: `partition ${names} healed` })
        )
      })
  }
  return faults
})
