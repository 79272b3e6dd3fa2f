/**
 * Network faults (`Network.Faults`) for agents whose ports are on this machine's own network: process sandboxes,
 * and Docker containers on the host network. They share the machine's loopback, so nothing may slow the
 * loopback itself (a `netem` or `tbf` qdisc there would slow every process of the machine): faults act on the
 * traffic to each agent's ports only.
 *
 * **Details**
 *
 * - Delay, jitter, bandwidth caps and partitions: a `Relay` in front of the agent's ports (all but the first,
 *   which is an ssh agent's sshd), started at the agent's first fault and kept until the run ends. An nft rule
 *   of the run's table (`teztcloud_<hash of the namespace>`, `ip` family) redirects new IPv4 connections to
 *   127.0.0.0/8 on those ports to it. Connections opened before it are not relayed.
 * - Loss: an nft rule drops packets sent to the agent's ports with the given probability (`numgen random`), in
 *   a chain of its own that its scope deletes.
 * - `netem` is looked for (in a throwaway network namespace) and named in `mechanisms`, never used here.
 * - Ledger: the table, each chain and each relay are recorded before they exist; `cleanUp` deletes the table
 *   of a killed run (its relays died with it) and releases the records.
 */
import { Effect, Scope, Semaphore } from "effect"
import * as childProcess from "node:child_process"
import * as crypto from "node:crypto"
import type { Agent } from "./Agent.ts"
import * as CloudError from "./CloudError.ts"
import * as Ledger from "./Ledger.ts"
import type * as Network from "./NetworkFaults.ts"
import * as Relay from "./Relay.ts"
import { RunEvents } from "./RunEvents.ts"

/** The ledger kinds of this module. */
export const kinds: ReadonlyArray<string> = ["nft-table", "nft-chain", "relay"]

/** The nft table of a namespace's run (`ip` family). */
export const tableName = (namespace: string) =>
  `teztcloud_${crypto.createHash("sha256").update(namespace).digest("hex").slice(0, 12)}`

/** Runs `nft -f -` on `script` (all of it or nothing); the first line of its error output on failure. */
const nft = (script: string) =>
  Effect.try({
    try: () =>
      childProcess.execFileSync("nft", ["-f", "-"], { input: script, stdio: ["pipe", "pipe", "pipe"] }).toString(),
    catch: (e) => {
      const stderr = (e as { readonly stderr?: Buffer }).stderr?.toString().trim().split("\n")[0]
      return CloudError.service("nft", stderr || CloudError.messageOf(e), { cause: e })
    }
  })

/**
 * `Ledger.scoped` for an nft script, which makes all of its rules or none: the record of a script that failed
 * is released at once.
 */
const recorded = (
  record: Ledger.Resource,
  script: string,
  undo: Effect.Effect<void>
) =>
  Effect.gen(function*() {
    const ledger = yield* Ledger.Ledger
    yield* Ledger.scoped(
      record,
      nft(script).pipe(Effect.tapError(() => ledger.release(record.id).pipe(Effect.ignore))),
      () => undo
    )
  })

/** Whether a command exits 0. */
const succeeds = (command: string, args: ReadonlyArray<string>, timeout = 5000) =>
  childProcess.spawnSync(command, args, { stdio: "ignore", timeout }).status === 0

/** What this machine's kernel and rights allow, looked up once per deployment. */
export interface Probe {
  /** Why nft cannot change this machine's rules, or `undefined` when it can. */
  readonly nftMissing: string | undefined
  readonly netem: boolean
}

export const probe = (): Probe => {
  const listed = childProcess.spawnSync("nft", ["list", "tables"], {
    stdio: ["ignore", "ignore", "pipe"],
    timeout: 5000
  })
  const nftMissing = listed.error !== undefined
    ? `nft cannot run (${listed.error.message})`
    : listed.status !== 0
    ? `nft cannot read this machine's rules (${listed.stderr.toString().trim() || `exit ${listed.status}`}): ` +
      `run as root, or with CAP_NET_ADMIN`
    : undefined
  const netem = succeeds("unshare", ["-n", "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"])
  return { nftMissing, netem }
}

/** The ports of an agent a relay stands in front of: its range but the first port. */
const relayed = (agent: Agent) => ({ first: agent.ports.start + 1, last: agent.ports.end })

/**
 * The faults of a deployment of `agents` whose ports are on this machine, in the current scope (the run's):
 * what they start lives until it closes. `where` names the backend in messages.
 */
export const make = Effect.fn("LoopbackNetwork.make")(function*(options: {
  readonly namespace: string
  readonly where: string
  /** The seeded source of jitter (`Network.seeded`). */
  readonly random: () => number
  /** The deployment's agents: no relay listens on a port of their ranges. */
  readonly agents: ReadonlyArray<Agent>
}) {
  const scope = yield* Effect.scope
  const ledger = yield* Ledger.Ledger
  const events = yield* RunEvents
  const table = tableName(options.namespace)
  const lock = yield* Semaphore.make(1)
  const relays = new Map<string, Relay.Relay>()
  let tableMade = false
  let probed: Probe | undefined
  let chains = 0
  let told = false
  const inRunScope = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    effect.pipe(Effect.provideService(Scope.Scope, scope), Effect.provideService(Ledger.Ledger, ledger))

  const probeOnce = Effect.sync(() => probed ??= probe())

  /**
   * Fails naming why, when nft cannot act here; otherwise, at the first fault of the run, says what realizes
   * them (unless `mechanisms` already did, for `--tc-delay`).
   */
  const needNft = (fault: string) =>
    Effect.flatMap(probeOnce, (p) =>
      p.nftMissing !== undefined
        ? Effect.fail(CloudError.notAvailable(`network ${fault} on ${options.where}`, p.nftMissing))
        : told
        ? Effect.void
        : Effect.flatMap(faults.mechanisms, (lines) =>
          Effect.forEach(lines, (l) => Effect.logInfo(l), { discard: true })))

  const ensureTable = Effect.suspend(() => {
    if (tableMade) return Effect.void
    return inRunScope(recorded(
      { id: `nft-table:${table}`, kind: "nft-table", data: { name: table, family: "ip" } },
      `add table ip ${table}\ndelete table ip ${table}\nadd table ip ${table}\n` +
        `add chain ip ${table} relays { type nat hook output priority -100; }\n`,
      nft(`delete table ip ${table}\n`).pipe(Effect.ignore)
    )).pipe(Effect.tap(() => Effect.sync(() => (tableMade = true))))
  })

  /** The relay in front of `agent`'s ports, started (with its redirect) at its first use. */
  const relayOf = (agent: Agent) =>
    lock.withPermits(1)(Effect.gen(function*() {
      const known = relays.get(agent.name)
      if (known !== undefined) return known
      yield* ensureTable
      const { first, last } = relayed(agent)
      if (first > last) {
        return yield* CloudError.notAvailable(
          `network faults on ${agent.name}`,
          "its port range has no port but its first: raise --ports-per-vm"
        )
      }
      const relay = yield* inRunScope(Ledger.scoped(
        { id: `relay:${table}:${agent.name}`, kind: "relay", data: { agent: agent.name, table, first, last } },
        Relay.make({
          agent: agent.name,
          namespace: options.namespace,
          first,
          last,
          random: options.random,
          avoid: (port) => options.agents.some((a) => port >= a.ports.start && port <= a.ports.end)
        }),
        () => Effect.void
      ))
      const chain = `relay_${agent.index}`
      yield* inRunScope(recorded(
        { id: `nft-chain:${table}:${chain}`, kind: "nft-chain", data: { table, chain, agent: agent.name } },
        `add chain ip ${table} ${chain}\n` +
          `add rule ip ${table} ${chain} ip daddr 127.0.0.0/8 ip saddr != ${Relay.sourceAddress} ` +
          `tcp dport ${first}-${last} redirect to :${relay.port}\n` +
          `add rule ip ${table} relays jump ${chain}\n`,
        // The jump goes with the table (at the end of the run), and the chain cannot go before it.
        Effect.void
      ))
      relays.set(agent.name, relay)
      return relay
    }))

  const announce = (agent: string, fault: string) => events.emit({ type: "network", agent, fault })

  /** Runs `add` now and its returned undo when the current scope closes, announcing both. */
  const scoped = (agent: string, fault: string, add: Effect.Effect<Effect.Effect<void>, CloudError.CloudError>) =>
    Effect.acquireRelease(
      add.pipe(Effect.tap(() => announce(agent, fault))),
      (undo) => undo.pipe(Effect.andThen(announce(agent, `${fault} undone`)))
    ).pipe(Effect.asVoid)

  const faults: Network.Faults = {
    mechanisms: Effect.gen(function*() {
      const p = yield* probeOnce
      if (p.nftMissing !== undefined) {
        return yield* CloudError.notAvailable(`network faults on ${options.where}`, p.nftMissing)
      }
      told = true
      return [
        `network faults on ${options.where}: the agents share this machine's loopback; delay, jitter, bandwidth ` +
        `caps and partitions by a relay in front of each agent's ports (nft redirect, table ${table}); loss by nft ` +
        `(numgen random); netem: ${
          p.netem ? "in this kernel, unused on a shared loopback" : "not in this kernel (tc qdisc … netem fails)"
        }`
      ]
    }),
    delay: (agent, value) =>
      Effect.gen(function*() {
        yield* needNft("delay")
        const relay = yield* relayOf(agent)
        yield* scoped(
          agent.name,
          `delay ${value.millis} ms ± ${value.jitterMillis} ms (relay)`,
          relay.addDelay(value.millis, value.jitterMillis)
        )
      }),
    bandwidth: (agent, bytesPerSecond) =>
      Effect.gen(function*() {
        yield* needNft("bandwidth cap")
        const relay = yield* relayOf(agent)
        yield* scoped(agent.name, `bandwidth ${bytesPerSecond} B/s (relay)`, relay.addCap(bytesPerSecond))
      }),
    partition: (groups) =>
      Effect.gen(function*() {
        yield* needNft("partition")
        const members = groups.map((g) => g.map((a) => a.name))
        const undos: Array<Effect.Effect<void>> = []
        yield* Effect.addFinalizer(() =>
          Effect.forEach(undos, (undo) => undo, { discard: true }).pipe(
            Effect.andThen(announce(members.flat().join(" "), `partition ${describe(members)} healed`))
          )
        )
        for (const [i, group] of groups.entries()) {
          const others = members.filter((_, j) => j !== i).flat()
          for (const agent of group) {
            const relay = yield* relayOf(agent)
            undos.push(yield* relay.block(others))
          }
        }
        yield* announce(members.flat().join(" "), `partition ${describe(members)} (relay)`)
      }),
    loss: (agent, percent) =>
      Effect.gen(function*() {
        yield* needNft("loss")
        yield* lock.withPermits(1)(ensureTable)
        const { first, last } = relayed(agent)
        const chain = `loss_${agent.index}_${chains++}`
        // Before the redirect (priority -100): the packets still name the agent's port. The relay's own
        // connections (from its source address) are left alone: a packet is dropped once, on its way in.
        const rate = Math.max(1, Math.min(100, Math.round(percent)))
        yield* recorded(
          { id: `nft-chain:${table}:${chain}`, kind: "nft-chain", data: { table, chain, agent: agent.name } },
          `add chain ip ${table} ${chain} { type filter hook output priority -150; }\n` +
            `add rule ip ${table} ${chain} ip daddr 127.0.0.0/8 ip saddr != ${Relay.sourceAddress} ` +
            `meta l4proto { tcp, udp } th dport ${first}-${last} numgen random mod 100 < ${rate} drop\n`,
          nft(`flush chain ip ${table} ${chain}\ndelete chain ip ${table} ${chain}\n`).pipe(Effect.ignore)
        ).pipe(Effect.provideService(Ledger.Ledger, ledger))
        yield* Effect.acquireRelease(
          announce(agent.name, `loss ${rate}% (nft)`),
          () => announce(agent.name, `loss ${rate}% undone`)
        )
      })
  }
  return faults
})

const describe = (groups: ReadonlyArray<ReadonlyArray<string>>) => groups.map((g) => `[${g.join(", ")}]`).join(" | ")

/**
 * Removes what a killed run of `namespace` left: its nft table (its relays died with its process); releases
 * this module's ledger records. Returns what it removed.
 */
export const cleanUp = Effect.fn("LoopbackNetwork.cleanUp")(function*(namespace: string) {
  const ledger = yield* Ledger.Ledger
  const records = (yield* ledger.outstanding).filter((r) => kinds.includes(r.kind))
  const table = tableName(namespace)
  const removed: Array<string> = []
  if (tableExists(table)) {
    yield* nft(`delete table ip ${table}\n`).pipe(
      Effect.mapError((e) => CloudError.state(`nft table ${table}`, `cannot delete it: ${e.message}`, { cause: e }))
    )
    removed.push(`nft table ip ${table}`)
  }
  for (const r of records) yield* ledger.release(r.id)
  return removed
})

/**
 * Deletes the namespace's nft table now, synchronously, within 2 s (a forced exit); its ledger records stay for
 * `cleanUp`. Returns 1 when it deleted one, else 0.
 */
export const removeSync = (namespace: string): number => {
  const table = tableName(namespace)
  return succeeds("nft", ["list", "table", "ip", table], 1000) &&
      succeeds("nft", ["delete", "table", "ip", table], 1000)
    ? 1
    : 0
}

/** Whether the nft table exists (false where nft cannot run). */
export const tableExists = (table: string) => succeeds("nft", ["list", "table", "ip", table])

/** What of the namespace is left in this machine's rules, one line each. */
export const leftovers = (namespace: string): ReadonlyArray<string> => {
  const table = tableName(namespace)
  return tableExists(table) ? [`nft table ip ${table}`] : []
}
