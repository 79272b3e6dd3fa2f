/**
 * The fault suite: nothing leaks, nothing hangs. For each backend available here (process sandboxes, an ssh host,
 * Docker), real runs of the real CLI, each with one agent or two and a daemon each, are hit by a fault at a random
 * point of their deploy, body or teardown: SIGINT, a double SIGINT, SIGTERM, SIGHUP or SIGKILL, and the special
 * faults (the ssh host killed, its sshd stopped mid-command, a daemon ignoring SIGTERM, a full artifacts disk, a
 * failing finalizer). Every run must exit within 30 s of its last signal, and after it (and `CLOUD clean up` when
 * it needs one) nothing of it may be left. The table of every run is printed at the end.
 *
 * **Replay**
 *
 * The seed is printed first; `TEZT_CLOUD_FAULT_SEED=<seed>` replays the same plans, and
 * `TEZT_CLOUD_FAULT_ONLY="<backend>/<fault>/<index>"` (as a failure names it) runs one of them alone (ending with
 * `/`, it is a prefix: `ssh-host/` runs the ssh host's plans only).
 * `TEZT_CLOUD_FAULTS` is the number of faults per backend (100 by default), `TEZT_CLOUD_FAULT_SPECIALS` the
 * number of each special fault among them (4; the signals take the rest), `TEZT_CLOUD_FAULT_CONCURRENCY` the runs at once (6), and
 * `TEZT_CLOUD_FAULT_TABLE=<file>` also writes the table there.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { DockerAgents, DockerClient } from "@tezt-cloud/docker"
import { SshKeys } from "@tezt-cloud/ssh"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { noDocker, root } from "../fixtures/Cli.ts"
import * as DockerEngine from "../fixtures/DockerEngine.ts"
import * as Integration from "../fixtures/Integration.ts"
import * as SshHosts from "../fixtures/SshHosts.ts"
import * as FaultPlan from "./FaultPlan.ts"
import * as FaultRun from "./FaultRun.ts"
import * as FaultTable from "./FaultTable.ts"
import * as Leftovers from "./Leftovers.ts"

const count = (variable: string, fallback: number) => {
  const value = process.env[variable]
  if (value === undefined || value === "") return fallback
  const n = Number(value)
  if (!Number.isInteger(n) || n < 0) throw new Error(`${variable}=${value}: give a non-negative integer`)
  return n
}

const seed = FaultPlan.suiteSeed()
const perBackend = count("TEZT_CLOUD_FAULTS", 100)
const specialRuns = count("TEZT_CLOUD_FAULT_SPECIALS", 4)
const concurrency = Math.max(1, count("TEZT_CLOUD_FAULT_CONCURRENCY", 6))
const only = process.env.TEZT_CLOUD_FAULT_ONLY

console.log(`fault suite: seed ${seed} (replay with TEZT_CLOUD_FAULT_SEED=${seed})`)

/** How a failure names a run, for `TEZT_CLOUD_FAULT_ONLY`. */
const id = (plan: FaultPlan.Plan) => `${plan.backend}/${plan.fault}/${plan.index}`

/**
 * The backend's `perBackend` plans: `specialRuns` of each of its special faults (first: they last longer), then the
 * signal faults in turn.
 */
const plans = (backend: FaultPlan.Backend, specials: ReadonlyArray<FaultPlan.Fault>) => {
  const special = specials.flatMap((fault) =>
    Array.from({ length: specialRuns }, (_, i) => FaultPlan.plan(seed, backend, fault, i))
  ).slice(0, perBackend)
  const signals = Array.from(
    { length: perBackend - special.length },
    (_, i) => FaultPlan.plan(seed, backend, FaultPlan.signalFaults[i % FaultPlan.signalFaults.length]!, i)
  )
  return [...special, ...signals].filter((p) =>
    only === undefined || (only.endsWith("/") ? id(p).startsWith(only) : id(p) === only)
  )
}

/** Runs `task`s at most `n` at a time; a task that ends hands its slot to the next one waiting. */
const limiter = (n: number) => {
  let active = 0
  const waiting: Array<() => void> = []
  const acquire = () => {
    if (active < n) {
      active += 1
      return Promise.resolve()
    }
    return new Promise<void>((resolve) => waiting.push(resolve))
  }
  const release = () => {
    const next = waiting.shift()
    if (next === undefined) active -= 1
    else next()
  }
  return async <A>(task: () => Promise<A>): Promise<A> => {
    await acquire()
    try {
      return await task()
    } finally {
      release()
    }
  }
}
const limit = limiter(concurrency)

// Each run has a port range of its own (2 agents × 8 ports), in a block no other test uses, below Linux's
// ephemeral range (32768 and up): a run never meets another's listener, nor a connection's port. A range where
// something listens already (left by an earlier suite's failure) is skipped: a run is charged with its own only.
const portBlock = { first: 10_000, size: 16, count: 625 }
let nextSlot = 0
const basePort = () => {
  for (let tries = 0; tries < portBlock.count; tries++) {
    const base = portBlock.first + (nextSlot++ % portBlock.count) * portBlock.size
    if (Leftovers.listeningPorts(base, base + portBlock.size).length === 0) return base
  }
  throw new Error(
    `every port range of ${portBlock.first}-${portBlock.first + portBlock.count * portBlock.size} is taken`
  )
}

const outcomes: Array<FaultRun.Outcome> = []
const suiteStart = Date.now()

/** A run on the host's state of its own, its flags and environment. */
interface Backend {
  readonly target: (
    plan: FaultPlan.Plan
  ) => Promise<{ readonly target: FaultRun.Target; readonly done: () => Promise<void> }>
}

/** Runs the backend's plans, `concurrency` at a time over all backends, and checks none leaked or hung. */
const runAll = async (backend: Backend, planned: ReadonlyArray<FaultPlan.Plan>) => {
  const ran = await Promise.all(planned.map((plan) =>
    limit(async () => {
      const { done, target } = await backend.target(plan)
      try {
        return await FaultRun.run(plan, target, { basePort: basePort(), tree: SshHosts.tree })
      } finally {
        await done()
      }
    })
  ))
  outcomes.push(...ran)
  const failed = ran.filter((o) => o.leaked || o.hung).map((o) =>
    `${FaultPlan.describe(o.plan)}: ${o.outcome}${o.leaked ? `, left ${Leftovers.describe(o.left)}` : ""}` +
    ` [replay: TEZT_CLOUD_FAULT_SEED=${seed} TEZT_CLOUD_FAULT_ONLY="${id(o.plan)}"; namespace ${o.namespace}]` +
    `\n${o.log}`
  )
  assert.deepStrictEqual(failed, [], `${failed.length} of ${ran.length} runs leaked or hung`)
}

const compileCache = path.join(os.tmpdir(), "tezt-cloud-fault-compile-cache")
/** What every run's environment has: Node's compile cache, so that each CLI start costs less CPU. */
const common = { NODE_COMPILE_CACHE: compileCache }

const nothing = async () => {}

const processes: Backend = {
  target: async () => ({
    target: { args: ["--localhost", "--agent-runtime", "process"], env: { ...common, DOCKER_HOST: noDocker } },
    done: nothing
  })
}

/** The suite's ssh key (given with `--ssh-private-key`: nothing is written to `~/.ssh`) and the shared host. */
const keyHome = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-fault-home-"))
const keyPath = SshKeys.defaultPath("faults", keyHome)
const sshKey = () => Effect.runPromise(SshKeys.ensure("faults", undefined, keyHome))
let sharedHost: SshHosts.SshHost | undefined

/** A run on an ssh host: the shared one, or a host of its own for the faults that kill or stop it. */
const sshHost: Backend = {
  target: async (plan) => {
    const own = plan.fault === "host killed" || plan.fault === "sshd stopped"
    const host = own ? await SshHosts.start({ authorizedKeys: [(await sshKey()).publicKey] }) : sharedHost!
    const uid = SshHosts.ensureUser()
    return {
      target: {
        args: ["--ssh-host", `${host.user}@${host.host}:${host.port}`, "--ssh-private-key", keyPath],
        env: { ...common, DOCKER_HOST: noDocker },
        // Where the backend puts a run on the host: `${TMPDIR:-/tmp}/tezt-cloud-<uid>/<ns>` (no TMPDIR there).
        remoteDir: (namespace) => path.join("/tmp", `tezt-cloud-${uid}`, namespace),
        host
      },
      done: own ? () => host.stop() : nothing
    }
  }
}

/** A run on the test engine's containers. */
const docker: Backend = {
  target: async () => ({
    target: {
      args: ["--localhost", "--agent-runtime", "docker", "--dockerfile-alias", "debian", "--ssh-private-key", keyPath],
      env: { ...common, DOCKER_HOST: DockerEngine.host, TEZT_CLOUD_DOCKERFILES: path.join(root, "dockerfiles") },
      dockerSocket: DockerEngine.socket
    },
    done: nothing
  })
}

/** Removes what leaked runs left on the engine, once reported: later suites must not meet it. */
const removeDockerLeftovers = (namespaces: ReadonlyArray<string>) =>
  Effect.runPromise(
    Effect.forEach(namespaces, (namespace) =>
      Effect.gen(function*() {
        const engine = yield* DockerClient.DockerClient
        const left = yield* DockerAgents.leftovers(namespace)
        yield* Effect.forEach(left.containers, (c) => engine.remove(c))
        yield* Effect.forEach(
          left.networks,
          (n) => engine.removeNetwork(n, { [DockerClient.namespaceLabel]: namespace })
        )
        yield* Effect.forEach(left.images, (i) => engine.removeImage(i))
      }).pipe(Effect.ignore)).pipe(Effect.provide(DockerClient.layer({ socketPath: DockerEngine.socket })))
  )

const timeout = 1_800_000

describe.concurrent("fault suite", () => {
  afterAll(async () => {
    await sharedHost?.stop()
    fs.rmSync(keyHome, { recursive: true, force: true })
    if (outcomes.length === 0) return
    const table = FaultTable.render(outcomes)
    const seconds = ((Date.now() - suiteStart) / 1000).toFixed(0)
    console.log(
      `\nfault suite: seed ${seed}, ${outcomes.length} runs in ${seconds} s, ${concurrency} at once\n${table}`
    )
    const file = process.env.TEZT_CLOUD_FAULT_TABLE
    if (file !== undefined && file !== "") fs.writeFileSync(file, table + "\n")
  })

  it.live(
    `process sandboxes: ${perBackend} faults (signals and special ones), nothing leaks, nothing hangs`,
    () =>
      Effect.promise(() =>
        runAll(processes, plans("process", ["daemon ignores SIGTERM", "artifacts disk full", "finalizer fails"]))
      ),
    timeout
  )

  describe.runIf(Integration.available("ssh-host fault suite", [SshHosts.sshd, "/usr/bin/ssh-keygen"]))(
    "on an ssh host",
    () => {
      beforeAll(async () => {
        sharedHost = await SshHosts.start({ authorizedKeys: [(await sshKey()).publicKey] })
      })

      it.live(
        `ssh-host: ${perBackend} faults (signals and special ones), nothing leaks, nothing hangs`,
        () =>
          Effect.promise(() =>
            runAll(
              sshHost,
              plans("ssh-host", [
                "host killed",
                "sshd stopped",
                "daemon ignores SIGTERM",
                "artifacts disk full",
                "finalizer fails"
              ])
            )
          ),
        timeout
      )
    }
  )

  describe.runIf(Integration.available("docker fault suite", DockerEngine.binaries))("on Docker", () => {
    beforeAll(async () => {
      await DockerEngine.ready()
      await sshKey()
    }, 600_000)

    afterAll(() =>
      removeDockerLeftovers(outcomes.filter((o) => o.plan.backend === "docker" && o.leaked).map((o) => o.namespace))
    )

    it.live(
      `docker: ${perBackend} faults (signals and special ones), nothing leaks, nothing hangs`,
      () =>
        Effect.promise(() =>
          runAll(docker, plans("docker", ["daemon ignores SIGTERM", "artifacts disk full", "finalizer fails"]))
        ),
      timeout
    )
  })
})
