/**
 * The one place a backend is chosen (ARCHITECTURE.md "Backend selection"): the resolved mode and
 * `--agent-runtime` map to a `Deployment` layer. Also the backends' clean-up entry points.
 */
import { CloudConfig, CloudError, type Deployment, type Ledger, type RunEvents } from "@tezt-cloud/core"
import { DockerAgents, DockerClient } from "@tezt-cloud/docker"
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
      return localhost(config, options)
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

/**
 * `--localhost`: Docker containers when an engine answers (or `--agent-runtime docker` insists), process
 * sandboxes otherwise (or with `--agent-runtime process`), saying which and why.
 */
const localhost = Effect.fnUntraced(function*(
  config: CloudConfig.CloudConfig,
  options: { readonly stateDir: string; readonly artifactsDir: string }
) {
  const processes = (why: string): Selected => ({
    description: `local process sandboxes (${why})`,
    layer: Localhost.layer({ stateDir: options.stateDir, config, artifactsDir: options.artifactsDir })
  })
  if (config.agentRuntime === "process") return processes("--agent-runtime process")
  const engine = DockerClient.engineOptions()
  const where = DockerClient.engineLabel(engine)
  if (!(yield* DockerClient.probe(engine))) {
    if (config.agentRuntime === "auto") return processes(`no Docker engine answers at ${where}`)
    return yield* CloudError.config(
      "--agent-runtime docker",
      `no Docker engine answers at ${where}: start dockerd (or point DOCKER_HOST at one; see README "Docker"), ` +
        `or use --agent-runtime process`
    )
  }
  return {
    description: `Docker containers on ${where} (${
      config.agentRuntime === "docker"
        ? "--agent-runtime docker"
        : "an engine answers; --agent-runtime process for processes"
    })`,
    layer: DockerAgents.layer({ stateDir: options.stateDir, config, artifactsDir: options.artifactsDir }).pipe(
      Layer.provide(DockerClient.layer(engine))
    )
  } satisfies Selected
})

/** Removes what killed runs of the namespace left, on every backend that can leave something. */
export const cleanUp = Effect.fn("Backends.cleanUp")(function*(stateDir: string, config: CloudConfig.CloudConfig) {
  const local = yield* Localhost.cleanUp(stateDir, config.namespace)
  const remote = yield* SshHost.cleanUp(stateDir, config)
  const docker = yield* DockerAgents.cleanUp(config.namespace).pipe(Effect.provide(DockerClient.layer()))
  return { ...local, hosts: remote, docker }
})

/** Last resort of a second Ctrl+C: kill the namespace's processes now. */
export const forceKillSync = (namespace: string) => Localhost.forceKillSync(namespace)
