/**
 * The fault suite on an ssh host (`--ssh-host`, a real sshd of `SshHosts.ts` on this machine): real runs of the
 * real CLI, one agent or two with a daemon each, hit by SIGINT, a double SIGINT, SIGTERM, SIGHUP or SIGKILL at a
 * random point of their deploy, body or teardown, and by the special faults: the host killed (its sshd and every
 * session), its sshd stopped mid-command, a daemon ignoring SIGTERM, a full artifacts disk, a failing finalizer.
 * Most runs share one host; the runs that kill or stop theirs have a host of their own. Every run must exit within
 * 30 s of its last signal, and after it (and `CLOUD clean up` when it needs one) nothing of it may be left, here or
 * in its run directory on the host. The harness and the replay variables: `FaultSuite.ts`.
 */
import { afterAll, beforeAll, describe, it } from "@effect/vitest"
import { SshKeys } from "@tezt-cloud/ssh"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { noDocker } from "../fixtures/Cli.ts"
import * as Integration from "../fixtures/Integration.ts"
import * as SshHosts from "../fixtures/SshHosts.ts"
import * as FaultSuite from "./FaultSuite.ts"

const suite = FaultSuite.make("ssh-host")

/** The file's ssh key (given with `--ssh-private-key`: nothing is written to `~/.ssh`) and the shared host. */
const keyHome = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-fault-home-"))
const keyPath = SshKeys.defaultPath("faults", keyHome)
const sshKey = () => Effect.runPromise(SshKeys.ensure("faults", undefined, keyHome))
const shared: { host?: SshHosts.SshHost } = {}

/** A run on an ssh host: the shared one, or a host of its own for the faults that kill or stop it. */
const sshHost: FaultSuite.Backend = {
  target: async (plan) => {
    const own = plan.fault === "host killed" || plan.fault === "sshd stopped"
    const host = own ? await SshHosts.start({ authorizedKeys: [(await sshKey()).publicKey] }) : shared.host!
    const uid = SshHosts.ensureUser()
    return {
      target: {
        args: ["--ssh-host", `${host.user}@${host.host}:${host.port}`, "--ssh-private-key", keyPath],
        env: { ...FaultSuite.common, DOCKER_HOST: noDocker },
        // Where the backend puts a run on the host: `${TMPDIR:-/tmp}/tezt-cloud-<uid>/<ns>` (no TMPDIR there).
        remoteDir: (namespace) => path.join("/tmp", `tezt-cloud-${uid}`, namespace),
        host
      },
      done: own ? () => host.stop() : FaultSuite.nothing
    }
  }
}

describe.runIf(Integration.available("ssh-host fault suite", [SshHosts.sshd, "/usr/bin/ssh-keygen"]))(
  "fault suite on an ssh host",
  () => {
    beforeAll(async () => {
      shared.host = await SshHosts.start({ authorizedKeys: [(await sshKey()).publicKey] })
    })

    afterAll(async () => {
      suite.report()
      await shared.host?.stop()
      fs.rmSync(keyHome, { recursive: true, force: true })
    })

    it.live(
      `ssh-host: ${suite.faults} faults (signals and special ones), nothing leaks, nothing hangs`,
      () =>
        Effect.promise(() =>
          suite.runAll(
            sshHost,
            suite.plans([
              "host killed",
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
