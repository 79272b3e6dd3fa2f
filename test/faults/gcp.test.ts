/**
 * The fault suite on GCP (the default mode) against the GCE emulator: real runs of the real CLI, one VM or two with
 * a daemon each, hit by SIGINT, a double SIGINT, SIGTERM, SIGHUP or SIGKILL at a random point of their deploy, body
 * or teardown, and by the special faults of VMs: the VM killed under the run (its host fails: the emulator kills
 * its container and the instance goes `TERMINATED`), its sshd stopped (SIGSTOP) while a command runs and Ctrl+C a
 * moment later, a daemon ignoring SIGTERM, a full artifacts disk, a failing finalizer.
 *
 * One emulator serves the file (started first, its hosts removed at the end); its VMs are containers of the
 * agents' image, each with sshd on a loopback address of its own, all on the same port (the gcp block's first:
 * every run's `--vm-base-port`), and the daemons listen on their VM's address.
 *
 * **What a run may keep**
 *
 * GCP keeps a run's VMs unless `--destroy` (the next run of the namespace reuses them): every run here has
 * `--destroy` and a namespace of its own, so after it (and `CLOUD clean up` when it needs one) nothing of it may be
 * left: no instance with its label, no firewall rule with its description, no emulator host (container) of its
 * instances, no process carrying its marker (here or in a VM), no live-run file or ledger record in its state dir,
 * no listener in its port range on its VMs' addresses. Runs do without Prometheus and Grafana (the default of
 * the cloud mode), as the runs of the other backends do: their ports would be every run's. The harness and the
 * replay variables: `FaultSuite.ts`.
 *
 * **Cost**: a GCP run's CLI spends about 1 CPU-second: the Compute clients are made on definitions pruned to the
 * methods the backend calls, embedded in the CLI's build (no 12 MB `protos.json` to parse), and Docker's client is
 * not loaded; each VM is a container of the test engine (a few tenths of a CPU-second of dockerd, containerd and
 * runc). `npm test` runs the full count, 100 runs (4 of each special fault), 8 at once.
 */
import { afterAll, beforeAll, describe, it } from "@effect/vitest"
import { DockerClient } from "@tezt-cloud/docker"
import { DockerHosts } from "@tezt-cloud/gce-emulator"
import { GceResources } from "@tezt-cloud/gcp"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Emulator from "../../packages/gcp/test/fixtures/Emulator.ts"
import { noDocker } from "../fixtures/Cli.ts"
import * as DockerEngine from "../fixtures/DockerEngine.ts"
import * as Integration from "../fixtures/Integration.ts"
import * as SshHosts from "../fixtures/SshHosts.ts"
import type * as FaultRun from "./FaultRun.ts"
import * as FaultSuite from "./FaultSuite.ts"

// Runs mostly wait (for their VMs, for ssh): more of them at once than on the other backends. The full count
// (100 faults, 4 of each special one).
const suite = FaultSuite.make("gcp", { concurrency: 8 })

/** Every VM's sshd port, and the runs' `--vm-base-port`: the first port of the gcp block. */
const vmPort = 16_000
/** The VMs' addresses: a loopback /24 of this file's own. */
const subnet = `127.82.${process.pid % 250}`

const emulator: { current?: Emulator.Emulator } = {}
const url = () => emulator.current!.url
/** The runs' home: where each namespace's ssh key (`~/.ssh/<ns>-tf`) is made. */
const home = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-fault-home-"))

interface Instance {
  readonly name: string
  readonly labels?: Record<string, string>
  readonly networkInterfaces?: ReadonlyArray<
    { readonly networkIP?: string; readonly accessConfigs?: ReadonlyArray<{ readonly natIP?: string }> }
  >
}

/**
 * A GET of the emulator's API, as JSON. Tried again a few times when the connection drops: on a loaded machine a
 * kept-alive connection may be closed by the server just as it is reused.
 */
const get = async (api: string, tries = 3): Promise<unknown> => {
  try {
    const answer = await fetch(`${url()}${api}`)
    if (answer.status !== 200) throw new Error(`GET ${api}: ${answer.status} ${await answer.text()}`)
    return await answer.json()
  } catch (error) {
    if (tries <= 1) throw error
    await new Promise((r) => setTimeout(r, 500))
    return get(api, tries - 1)
  }
}

/** Every instance of the emulator's project, in every zone. */
const instances = async (): Promise<Array<Instance>> => {
  const list = await get(`/compute/v1/projects/${Emulator.project}/aggregated/instances`) as {
    items?: Record<string, { instances?: Array<Instance> }>
  }
  return Object.values(list.items ?? {}).flatMap((scoped) => scoped.instances ?? [])
}

const addressesOf = (instance: Instance) =>
  (instance.networkInterfaces ?? []).flatMap((n) => [
    ...(n.networkIP === undefined ? [] : [n.networkIP]),
    ...(n.accessConfigs ?? []).flatMap((a) => a.natIP === undefined ? [] : [a.natIP])
  ])

/** The namespace's instances are named `<ns>-<agent>-<hash>`; the suite's namespaces have no dash past `fault-gcp-`. */
const ofNamespace = (name: string, namespace: string) => name.startsWith(`${namespace}-`)

/** The pid of the sshd that listens on `address`: a VM's, the process its container starts. */
const sshdListener = (address: string) =>
  fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p)).map(Number).find((pid) => {
    try {
      const argv = fs.readFileSync(`/proc/${pid}/cmdline`, "latin1").split("\0")
      return argv[0] === "/usr/sbin/sshd" && argv.includes(`ListenAddress=${address}`)
    } catch {
      return false
    }
  })

const vms: FaultRun.Vms = {
  kill: async (vm) => {
    const answer = await fetch(
      `${url()}/emulator/v1/projects/${Emulator.project}/zones/${Emulator.zone}/instances/${vm.name}/fail`,
      { method: "POST" }
    )
    // 404: the run's teardown has deleted the VM already (its `--destroy`), as may happen when the fault's point
    // comes late in a short run: nothing is left to kill, and the run is counted as every other.
    if (answer.status !== 200 && answer.status !== 404) {
      throw new Error(`failing VM ${vm.name}: ${answer.status} ${await answer.text()}`)
    }
  },
  sshd: (vm) => {
    const listener = sshdListener(vm.address)
    if (listener === undefined) return []
    return SshHosts.tree(listener).filter((pid) => {
      try {
        return fs.readFileSync(`/proc/${pid}/comm`, "latin1").startsWith("sshd")
      } catch {
        return false
      }
    })
  },
  addresses: async (namespace, runVms) => {
    const held = new Set((await instances()).filter((i) => !ofNamespace(i.name, namespace)).flatMap(addressesOf))
    return runVms.map((vm) => vm.address).filter((address) => !held.has(address))
  },
  leftovers: async (namespace) => {
    const vmsLeft = (await instances())
      .filter((i) => ofNamespace(i.name, namespace) || GceResources.labelled(i.labels, namespace))
      .map((i) => `instance ${i.name}`)
    const firewalls = await get(`/compute/v1/projects/${Emulator.project}/global/firewalls`) as {
      items?: Array<{ name: string; description?: string }>
    }
    const rules = (firewalls.items ?? []).filter((r) => r.description === GceResources.firewallDescription(namespace))
      .map((r) => `firewall rule ${r.name}`)
    const hosts = await DockerEngine.onEngine(
      Effect.gen(function*() {
        const engine = yield* DockerClient.DockerClient
        return yield* engine.containers({ [DockerHosts.label]: emulator.current!.id })
      })
    )
    const containers = hosts.filter((c) =>
      ofNamespace(c.labels[`${DockerHosts.label}.instance`]?.split("/").at(-1) ?? "", namespace)
    ).map((c) => `host ${c.name}`)
    return [...vmsLeft, ...rules, ...containers]
  }
}

/** A run on the emulator's VMs, deleted at its end (`--destroy`). */
const gcp: FaultSuite.Backend = {
  target: async () => ({
    target: {
      args: ["--project-id", Emulator.project, "--destroy", "--no-prometheus", "--no-grafana"],
      env: {
        ...FaultSuite.common,
        DOCKER_HOST: noDocker,
        HOME: home,
        TEZT_CLOUD_GCP_ENDPOINT: url()
      },
      vms,
      basePort: vmPort,
      cleanUpArgs: ["--project-id", Emulator.project]
    },
    done: FaultSuite.nothing
  })
}

describe.runIf(Integration.available("gcp fault suite", Emulator.binaries))(
  "fault suite on GCP (the emulator)",
  () => {
    beforeAll(async () => {
      emulator.current = await Emulator.start({ subnet, vmPort })
    }, 600_000)

    afterAll(async () => {
      suite.report()
      // Whatever a run left goes with the emulator's hosts.
      await emulator.current?.stop()
      fs.rmSync(home, { recursive: true, force: true })
    }, 120_000)

    it.live(
      `gcp: ${suite.faults} faults (signals and special ones), nothing leaks, nothing hangs`,
      () =>
        Effect.promise(() =>
          suite.runAll(
            gcp,
            suite.plans([
              "VM killed",
              "sshd stopped",
              "daemon ignores SIGTERM",
              "artifacts disk full",
              "finalizer fails"
            ])
          )
        ),
      FaultSuite.timeout
    )
  }
)
