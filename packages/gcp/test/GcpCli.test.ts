/**
 * `tezt-cloud` in the default (GCP) mode, end to end: the real executable against the real GCE emulator
 * (fixtures/Emulator.ts), whose instances are containers with their own sshd. VMs are created in parallel, kept
 * and reused, destroyed by label only (namespace `x` never touches `xy`); a TTL deletes a forgotten VM; a
 * `kill -9` mid-deploy is finished by `CLOUD clean up`; a quota error is one line and rolls back; `agents exec`
 * reaches a live run's VMs; no credentials is one line. With `--proxy`, the orchestrator runs on a VM of its own,
 * named in Cloud DNS, and deploys the agents' VMs from there.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { CloudDns, GcpTarget } from "@tezt-cloud/gcp"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { fresh, noProcessLeft, outstanding, start } from "../../../test/fixtures/Cli.ts"
import * as Integration from "../../../test/fixtures/Integration.ts"
import * as Ports from "../../../test/fixtures/Ports.ts"
import * as Emulator from "./fixtures/Emulator.ts"

const enabled = Integration.available("gcp CLI tests", Emulator.binaries)

// This file's hosts: a loopback /24 of its own, a port away from the other suites' ranges.
const subnet = `127.81.${process.pid % 250}`
const vmPort = Ports.take(10)

let emulator: Emulator.Emulator | undefined

/** A fresh namespace and state dir, whose `HOME` (the namespace's ssh key) is the state dir. */
const freshGcp = () => {
  const f = fresh()
  return { ...f, env: { ...f.env, HOME: f.stateDir, TEZT_CLOUD_GCP_ENDPOINT: emulator!.url } }
}

/** `tezt-cloud ARGS --tezt-cloud NS --project-id p --vm-base-port P` on the emulator. */
const gcp = (args: ReadonlyArray<string>, namespace: string, env: Record<string, string>) =>
  start([...args, "--tezt-cloud", namespace, "--project-id", Emulator.project, "--vm-base-port", String(vmPort)], env)

/** No monitoring stack: what these tests look at is the VMs. */
const light = ["--no-prometheus", "--no-grafana"]

const live = (name: string, body: () => Promise<void>, timeout = 180_000) =>
  it.live(name, () => Effect.promise(body), timeout)

const eventually = async (what: string, check: () => Promise<boolean>, seconds = 90) => {
  for (let i = 0; i < seconds * 4; i++) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 250))
  }
  assert.fail(`${what}: not within ${seconds} s`)
}

const count = (text: string, part: string) => text.split(part).length - 1

interface ZoneOperation {
  readonly targetLink: string
  readonly operationType: string
  readonly insertTime: string
  readonly endTime?: string
}

/** The emulator's insert Operations of instances `names`. */
const inserts = async (names: ReadonlyArray<string>) => {
  const url = `${emulator!.url}/compute/v1/projects/${Emulator.project}/zones/${Emulator.zone}/operations`
  const list = await (await fetch(url)).json() as { items?: Array<ZoneOperation> }
  return (list.items ?? []).filter((o) =>
    o.operationType === "insert" && names.some((n) => o.targetLink.endsWith(`/instances/${n}`))
  )
}

describe.runIf(enabled)("tezt-cloud on GCP (the GCE emulator)", () => {
  beforeAll(async () => {
    emulator = await Emulator.start({ subnet, vmPort })
  }, 600_000)

  afterAll(async () => {
    if (emulator === undefined) return
    // Whatever a failed test left goes with the emulator's hosts.
    await emulator.stop()
  }, 120_000)

  live("BASIC simple health: VMs in parallel, kept, reused; --destroy leaves nothing of x and all of xy", async () => {
    const { env, namespace: x, stateDir } = freshGcp()
    const xy = `${x}y`
    const beside = gcp(["BASIC", "simple", "health", ...light], xy, env)
    assert.strictEqual(await beside.exit, 0, beside.stderr())

    // Slow Operations: created one after the other, the second insert would come after the first one's end.
    await emulator!.setFaults({ operationDelayMillis: 2000 })
    const first = gcp(
      [
        "BASIC",
        "simple",
        "health",
        // The default monitoring, on ports and in a directory of this test's.
        "--website-port",
        String(vmPort + 7),
        "--prometheus-port",
        String(vmPort + 8),
        "--prometheus-export-path",
        path.join(stateDir, "snapshot")
      ],
      x,
      env
    )
    const firstExit = await first.exit
    await emulator!.setFaults({})
    assert.strictEqual(firstExit, 0, first.stderr() + first.stdout())
    for (const n of [0, 1]) assert.include(first.stdout(), `Hello world from agent ${n}`)
    assert.strictEqual(count(first.stdout(), "created VM"), 2)
    assert.include(first.stdout(), "No VM destroyed!")
    const vms = await emulator!.instancesOf(x)
    assert.lengthOf(vms, 2)
    const [a, b] = (await inserts(vms)).toSorted((p, q) => p.insertTime.localeCompare(q.insertTime))
    assert.isDefined(b, "both VMs were inserted")
    assert.isBelow(
      Date.parse(b!.insertTime),
      Date.parse(a!.endTime!),
      "the second VM was asked for before the first was done"
    )

    const ids = async () =>
      Promise.all(vms.map(async (instance) => {
        const [vm] = await emulator!.instances.get({ project: Emulator.project, zone: Emulator.zone, instance })
        return String(vm.id)
      }))
    const before = await ids()
    const again = gcp(["BASIC", "simple", "health", ...light], x, env)
    assert.strictEqual(await again.exit, 0, again.stderr())
    assert.strictEqual(count(again.stdout(), "reusing kept VM"), 2)
    assert.include(again.stdout(), "Hello world from agent 1")
    assert.deepStrictEqual(await ids(), before, "the same VMs")

    const destroy = gcp(["BASIC", "simple", "health", ...light, "--destroy"], x, env)
    assert.strictEqual(await destroy.exit, 0, destroy.stderr())
    assert.include(destroy.stdout(), "destroyed 2 VMs")
    assert.deepStrictEqual(await emulator!.instancesOf(x), [])
    assert.deepStrictEqual(await emulator!.rulesOf(x), [])
    assert.deepStrictEqual(await noProcessLeft(x), [])
    assert.deepStrictEqual(outstanding(stateDir, x), [])
    assert.lengthOf(await emulator!.instancesOf(xy), 2, "xy's VMs are untouched")
    assert.lengthOf(await emulator!.rulesOf(xy), 2, "xy's firewall rules are untouched")

    const job = gcp(["CLOUD", "destroy"], xy, env)
    assert.strictEqual(await job.exit, 0, job.stderr())
    assert.deepStrictEqual(await emulator!.instancesOf(xy), [])
    assert.deepStrictEqual(await emulator!.rulesOf(xy), [])
  }, 300_000)

  // These runs set no fault of the emulator's (the others do: its faults hold for every request): they run side by
  // side, the TTL's wait beside the proxy's run.
  describe.concurrent("without injected faults", () => {
    live(
      "--proxy: the orchestrator on a GCP VM named in Cloud DNS deploys the agents; --destroy leaves nothing",
      async () => {
        const { env, namespace: x, stateDir } = freshGcp()
        const domain = "proxy.example.test"
        const zone = gcp(["CLOUD", "create", "dns", "zone", "--dns-domain", domain], x, env)
        assert.strictEqual(await zone.exit, 0, zone.stderr())
        const cli = gcp(["BASIC", "simple", "health", ...light, "--proxy", "--destroy"], x, env)
        assert.strictEqual(await cli.exit, 0, cli.stdout() + cli.stderr())
        const out = cli.stdout()
        const proxy = new RegExp(`${x}-proxy: created VM \\S+ at (\\S+)`).exec(out)?.[1]
        assert.isDefined(proxy, `the proxy VM is created here:\n${out}`)
        assert.include(out, `proxy: the run started on root@${proxy}:${vmPort}`)
        assert.include(out, "GCP VMs (project p, zone europe-west1-b, emulator ")
        assert.include(out, "), from the proxy")
        assert.include(out, "Hello world from agent 1")
        const target = await Effect.runPromise(GcpTarget.resolve(Emulator.project, env))
        const named = await Effect.runPromise(
          CloudDns.make(target).records(CloudDns.defaultZoneName, `${x}.${domain}.`)
        )
        assert.deepStrictEqual(
          named.map((r) => r.rrdatas),
          [[proxy]],
          "<ns>.<the zone's domain> is the proxy's address"
        )
        assert.deepStrictEqual(await emulator!.instancesOf(x), [])
        assert.deepStrictEqual(await emulator!.rulesOf(x), [])
        assert.deepStrictEqual(await noProcessLeft(x), [])
        assert.deepStrictEqual(outstanding(stateDir, x), [])
        assert.isFalse(fs.existsSync(path.join(stateDir, x, "proxy.json")), "no proxy record is left")
      },
      300_000
    )

    live("a VM the run forgot (kept) is deleted by its TTL (--max-run-duration)", async () => {
      const { env, namespace } = freshGcp()
      const cli = gcp(["BASIC", "simple", "health", ...light, "--max-run-duration", "20"], namespace, env)
      assert.strictEqual(await cli.exit, 0, cli.stderr())
      assert.lengthOf(await emulator!.instancesOf(namespace), 2, "kept after the run")
      await eventually("the TTL deletes them", async () => (await emulator!.instancesOf(namespace)).length === 0)
      const job = gcp(["CLOUD", "terraform", "destroy"], namespace, env)
      assert.strictEqual(await job.exit, 0, job.stderr())
      assert.deepStrictEqual(await emulator!.rulesOf(namespace), [])
    })

    live("agents exec reaches a live run's VMs; Ctrl+C keeps the VMs and wipes the sandboxes", async () => {
      const { env, namespace } = freshGcp()
      const cli = gcp(["TEST", "block", ...light], namespace, env)
      await cli.waitFor("ready for signal")
      const exec = start([
        "agents",
        "exec",
        "--tezt-cloud",
        namespace,
        "--",
        "sh",
        "-c",
        "printf '%s %s' \"$TEZT_CLOUD_AGENT\" \"$(cat /run/sshd.emulator.pid >/dev/null && echo on-its-vm)\""
      ], env)
      assert.strictEqual(await exec.exit, 0, exec.stderr())
      for (const agent of ["agent-000", "agent-001"]) {
        assert.include(exec.stdout(), `[${agent}] ${namespace}/${agent} on-its-vm`)
      }
      const list = start(["agents", "list", "--tezt-cloud", namespace], env)
      assert.strictEqual(await list.exit, 0, list.stderr())
      assert.match(
        list.stdout(),
        new RegExp(`agent-000\\tgcp\\t${namespace}-agent-000-[0-9a-f]{6} ${subnet}\\.\\d+:${vmPort}`)
      )
      cli.proc.kill("SIGINT")
      assert.strictEqual(await cli.exit, 130)
      assert.lengthOf(await emulator!.instancesOf(namespace), 2, "kept")
      assert.deepStrictEqual(await noProcessLeft(namespace), [], "the daemons on the VMs are gone")
      const job = gcp(["CLOUD", "destroy"], namespace, env)
      assert.strictEqual(await job.exit, 0, job.stderr())
      assert.deepStrictEqual(await emulator!.instancesOf(namespace), [])
    })
  })

  live("kill -9 mid-deploy, then CLOUD clean up: nothing of the namespace is left", async () => {
    const { env, namespace, stateDir } = freshGcp()
    await emulator!.setFaults({ operationDelayMillis: 4000 })
    const cli = gcp(["TEST", "block", ...light], namespace, env)
    try {
      await eventually("a VM is being made", async () => (await emulator!.instancesOf(namespace)).length > 0)
      cli.proc.kill("SIGKILL")
      await cli.exit
    } finally {
      await emulator!.setFaults({})
    }
    assert.isNotEmpty(outstanding(stateDir, namespace), "the killed run's VMs are in its ledger")
    const cleanUp = gcp(["CLOUD", "clean", "up"], namespace, env)
    assert.strictEqual(await cleanUp.exit, 0, cleanUp.stderr())
    assert.include(cleanUp.stdout(), "deleted VM")
    assert.deepStrictEqual(await emulator!.instancesOf(namespace), [])
    assert.deepStrictEqual(await emulator!.rulesOf(namespace), [])
    assert.deepStrictEqual(outstanding(stateDir, namespace), [])
    assert.deepStrictEqual(await noProcessLeft(namespace), [])
  })

  live("Ctrl+C while VMs are being made: the run stops waiting for them at once, and deletes them", async () => {
    const { env, namespace, stateDir } = freshGcp()
    // Slow Operations: the VMs run, but their creation's Operation stays RUNNING a minute.
    await emulator!.setFaults({ operationDelayMillis: 60_000 })
    const cli = gcp(["TEST", "block", "--destroy", ...light], namespace, env)
    try {
      const api = `${emulator!.url}/compute/v1/projects/${Emulator.project}/zones/${Emulator.zone}/instances`
      await eventually("both VMs run, their Operations not done", async () => {
        const list = await (await fetch(api)).json() as { items?: Array<{ name: string; status: string }> }
        const ours = (list.items ?? []).filter((i) => i.name.startsWith(`${namespace}-`))
        return ours.length === 2 && ours.every((i) => i.status === "RUNNING")
      })
    } finally {
      // Their deletion's Operations are quick.
      await emulator!.setFaults({})
    }
    const signalled = Date.now()
    cli.proc.kill("SIGINT")
    assert.strictEqual(await cli.exit, 130, cli.stderr())
    const seconds = (Date.now() - signalled) / 1000
    // A run that waited for the Operations would take the rest of their minute.
    assert.isBelow(seconds, 30, cli.stdout())
    assert.include(cli.stdout(), "destroyed 2 VMs of this run")
    assert.deepStrictEqual(await emulator!.instancesOf(namespace), [])
    assert.deepStrictEqual(await emulator!.rulesOf(namespace), [])
    assert.deepStrictEqual(outstanding(stateDir, namespace), [])
  })

  live("an exceeded quota is one line naming the fix, and what the run created is deleted", async () => {
    const { env, namespace, stateDir } = freshGcp()
    await emulator!.setFaults({ quotaExceededOnInsert: [2] })
    const cli = gcp(["BASIC", "simple", "health", ...light], namespace, env)
    const code = await cli.exit
    await emulator!.setFaults({})
    assert.strictEqual(code, 1)
    assert.match(
      cli.stderr(),
      /deployment failed: gcp \(project p, [^)]*\): quota exceeded in project p \(Quota 'CPUS' exceeded.*--machine-type/
    )
    assert.strictEqual(cli.stderr().trim().split("\n").length, 1, cli.stderr())
    assert.include(cli.stdout(), "deleted the 1 VM it created")
    assert.deepStrictEqual(await emulator!.instancesOf(namespace), [])
    assert.deepStrictEqual(await emulator!.rulesOf(namespace), [])
    assert.deepStrictEqual(outstanding(stateDir, namespace), [])
  })
})

// On a GCE VM the metadata server gives credentials: there is no "no credentials" to see.
describe.skipIf(GcpTarget.onGce())("tezt-cloud on GCP without credentials", () => {
  it.live("no credentials and no emulator: one line naming the fix, nothing created (--proxy too)", () =>
    Effect.promise(async () => {
      for (const mode of [[], ["--proxy"]]) {
        const { env, namespace, stateDir } = fresh()
        const cli = start(["BASIC", "simple", "health", ...mode, "--tezt-cloud", namespace, "--project-id", "p"], {
          ...env,
          HOME: path.join(stateDir, "home"),
          GOOGLE_APPLICATION_CREDENTIALS: "",
          CLOUDSDK_CONFIG: "",
          TEZT_CLOUD_GCP_ENDPOINT: ""
        })
        assert.strictEqual(await cli.exit, 2, mode.join(" "))
        assert.match(
          cli.stderr(),
          /GCP credentials: no Google Cloud credentials here: run 'gcloud auth application-default login'/
        )
        assert.strictEqual(cli.stderr().trim().split("\n").length, 1, cli.stderr())
        assert.deepStrictEqual(fs.readdirSync(stateDir), [], mode.join(" "))
      }
    }))
})
