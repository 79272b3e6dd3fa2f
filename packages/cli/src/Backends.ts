/**
 * The one place a backend is chosen (ARCHITECTURE.md "Backend selection"): the resolved mode and
 * `--agent-runtime` map to a `Deployment` layer. Also the backends' clean-up entry points.
 */
import { CloudConfig, CloudError, type Deployment, type Ledger, type RunEvents } from "@tezt-cloud/core"
import { Localhost } from "@tezt-cloud/localhost"
import { SshHost } from "@tezt-cloud/ssh"
import { Effect, Layer } from "effect"
import type { ChildProcessSpawner } from "effect/process"

export interface Selected {
  /** What the user is told: which backend and why. */
  readonly description: string
  readonly layer: Layer.Layer<
    Deployment.Deployment,
    never,
    Ledger.Ledger | RunEvents.RunEvents | ChildProcessSpawner.ChildProcessSpawner
  >
}

/** The deployment layer for a resolved configuration. */
export const select = (
  config: CloudConfig.CloudConfig,
  options: { readonly stateDir: string; readonly artifactsDir: string }
): Effect.Effect<Selected, CloudError.CloudError> => {
  switch (config.mode) {
    case "localhost":
      if (config.agentRuntime === "docker") {
        return Effect.fail(CloudError.notAvailable("--agent-runtime docker", "use --agent-runtime process"))
      }
      return Effect.succeed({
        description: config.agentRuntime === "process"
          ? "local process sandboxes (--agent-runtime process)"
          : "local process sandboxes (the Docker runtime is not built yet)",
        layer: Localhost.layer({ stateDir: options.stateDir, config, artifactsDir: options.artifactsDir })
      })
    case "ssh-host":
      return Effect.succeed({
        description: `process sandboxes on ${config.sshHost!.user}@${config.sshHost!.host}:${
          config.sshHost!.port
        } over ssh`,
        layer: SshHost.layer({ stateDir: options.stateDir, config, artifactsDir: options.artifactsDir })
      })
    default:
      return CloudConfig.checkAvailable(config).pipe(
        Effect.andThen(Effect.fail(CloudError.notAvailable(`mode ${config.mode}`, "run with --localhost")))
      )
  }
}

/** Removes what killed runs of the namespace left, on every backend that can leave something. */
export const cleanUp = Effect.fn("Backends.cleanUp")(function*(stateDir: string, config: CloudConfig.CloudConfig) {
  const local = yield* Localhost.cleanUp(stateDir, config.namespace)
  const remote = yield* SshHost.cleanUp(stateDir, config)
  return { ...local, hosts: remote }
})

/** Last resort of a second Ctrl+C: kill the namespace's processes now. */
export const forceKillSync = (namespace: string) => Localhost.forceKillSync(namespace)
