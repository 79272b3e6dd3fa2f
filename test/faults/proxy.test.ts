/**
 * The fault suite with a proxy (`--localhost --proxy`, the proxy a container of the test engine, the run's one
 * agent or two process sandboxes inside it, a daemon each): the faults reach the local CLI, the client attached to
 * the run there, at a random point of its deploy (also while the proxy is being made), body or teardown. What each
 * means, as the README's "Proxy" says:
 *
 * - SIGINT: the run is asked to tear down there, the client shows the teardown, then the proxy goes: `exit 130`.
 *   Before the run has started there, the proxy goes at once.
 * - A double SIGINT: the second one leaves at once; the teardown there goes on, and `CLOUD clean up` (which the
 *   CLI names) removes the proxy.
 * - SIGTERM, SIGHUP (a closed terminal): the client detaches, the run goes on there; `proxy stop` (which the CLI
 *   names) ends it and removes the proxy. Before the run has started there, the proxy goes at once.
 * - SIGKILL: the run goes on there, by design; `CLOUD clean up` stops it and removes everything.
 * - The proxy killed (its container, mid-run): the client says the proxy is lost; `CLOUD clean up` removes what is
 *   left of it.
 * - The client's connection dropped (the proxy's sshd drops every session): the run goes on, the client reconnects
 *   and follows it to its end.
 * - A daemon that ignores SIGTERM, a finalizer that fails: as on the other backends, on the proxy.
 *
 * Every run must exit within 30 s of its last fault, and after it (and the command it names) nothing of it may be
 * left: no container, network or image tag with its label, no process carrying its marker (the container's are
 * this kernel's), no proxy or ledger record, no live-run file; at the end, no temporary directory of the proxy's
 * shipping here. The harness and the replay variables: `FaultSuite.ts`.
 *
 * 100 runs, as on the other backends, since a proxy run became cheap: its container runs the proxy image (made
 * once, in `beforeAll`) as it is, with no image built for its namespace, the proxy's server starts from the CLI's
 * build, and the shipping takes three ssh round trips. Measured on one `one plain` run of the shared 2-core
 * machine: 0.8 CPU-s for the CLI here and 1.25 in the container, against 1.3 and 1.65 (plus the image's build,
 * 2.6 s) before.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { DockerAgents, DockerClient } from "@tezt-cloud/docker"
import { ProxyImage } from "@tezt-cloud/proxy"
import { SshKeys } from "@tezt-cloud/ssh"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as DockerEngine from "../fixtures/DockerEngine.ts"
import * as Integration from "../fixtures/Integration.ts"
import * as DockerFaults from "./DockerFaults.ts"
import type * as FaultPlan from "./FaultPlan.ts"
import * as FaultSuite from "./FaultSuite.ts"

// 100 faults, 4 of each special one (the suite's defaults).
const suite = FaultSuite.make("proxy")

/** The file's ssh key (the proxy's authorized key; given with `--ssh-private-key`: nothing goes to `~/.ssh`). */
const keyHome = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-fault-home-"))
const keyPath = SshKeys.defaultPath("faults", keyHome)

const proxyContainer = (namespace: string) => DockerAgents.containerName(namespace, `${namespace}-proxy`)

/** The proxy's own faults: its container killed, or every ssh session of its sshd dropped. */
const inject = (fault: FaultPlan.Fault, namespace: string) =>
  DockerFaults.onEngine(Effect.flatMap(DockerClient.DockerClient, (docker) =>
    fault === "proxy killed"
      ? docker.remove(proxyContainer(namespace))
      : docker.exec(proxyContainer(namespace), [
        "sh",
        "-c",
        "ps -eo pid=,args= | awk '/[s]shd: root/ {print $1}' | xargs -r kill -9"
      ]))).then(() => undefined, () => undefined)

/** A run whose proxy is a container of the test engine; without Grafana, so without Prometheus and the website. */
const proxy: FaultSuite.Backend = {
  target: async () => ({
    target: {
      args: ["--localhost", "--proxy", "--no-grafana", "--dockerfile-alias", "debian", "--ssh-private-key", keyPath],
      env: DockerFaults.env,
      dockerSocket: DockerEngine.socket,
      inject
    },
    done: FaultSuite.nothing
  })
}

/** What the proxy's shipping puts in the temporary directory while it works: none may stay. */
const shippingTemps = () =>
  fs.readdirSync(os.tmpdir()).filter((f) => /^tezt-cloud-(proxy|artifacts|proxy-image)-/.test(f))

describe.runIf(Integration.available("proxy fault suite", DockerEngine.binaries))("fault suite with a proxy", () => {
  beforeAll(async () => {
    await DockerEngine.ready()
    await Effect.runPromise(SshKeys.ensure("faults", undefined, keyHome))
    // The proxy image of this version, once, before the runs that all start from it.
    await DockerFaults.onEngine(ProxyImage.ensure())
  }, 600_000)

  afterAll(() => DockerFaults.end(suite, keyHome))

  it.live(
    `proxy: ${suite.faults} faults (signals and special ones), nothing leaks, nothing hangs`,
    () =>
      Effect.promise(async () => {
        await suite.runAll(
          proxy,
          suite.plans(["proxy killed", "connection dropped", "daemon ignores SIGTERM", "finalizer fails"])
        )
        assert.deepStrictEqual(shippingTemps(), [], "the proxy's temporary directories are removed")
      }),
    FaultSuite.timeout
  )
})
