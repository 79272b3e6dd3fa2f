/**
 * A local image registry (`CLOUD docker registry deploy`): Debian's `docker-registry` binary run
 * in a container of the base image, on the host network at `127.0.0.1:<port>`, storing under the namespace's
 * state dir. Loopback registries need no daemon configuration to push to or pull from.
 *
 * **Details**
 *
 * The container `teztcloud-registry-<ns>` is long-lived (restart `unless-stopped`) and carries the label
 * `tezt-cloud.registry=<ns>`, not the namespace label: `CLOUD clean up` leaves it alone. Deploying again replaces
 * the container carrying that label (whatever its name: older versions named it otherwise), keeping the stored
 * images; a container of its name without it is someone else's: an error, left alone. No agent's container can
 * have its name (theirs are `teztcloud-<n>-…`, `n` a number).
 */
import { CloudError } from "@tezt-cloud/core"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as BaseImage from "./BaseImage.ts"
import { DockerClient } from "./DockerClient.ts"

/** The host binary of Debian's `docker-registry` package. */
export const binary = "/usr/bin/docker-registry"

/** The registry's address: `$TEZT_CLOUD_DOCKER_REGISTRY`, else `127.0.0.1:5000`. */
export const address = (env: Record<string, string | undefined> = process.env) =>
  env.TEZT_CLOUD_DOCKER_REGISTRY ?? "127.0.0.1:5000"

export const containerName = (namespace: string) => `teztcloud-registry-${namespace}`

/** The label of a namespace's registry container. */
const registryLabel = "tezt-cloud.registry"

/** Runs (or replaces) the registry container; returns its address once it listens. */
export const deploy = Effect.fn("DockerRegistry.deploy")(function*(options: {
  readonly namespace: string
  readonly dir: string
  readonly address?: string | undefined
}) {
  const docker = yield* DockerClient
  const where = options.address ?? address()
  const fail = (e: { readonly message: string }) => CloudError.deploy("registry", e.message, { cause: e })
  if (!fs.existsSync(binary)) {
    return yield* CloudError.notAvailable(
      "CLOUD docker registry deploy",
      `${binary} is missing: apt-get install docker-registry`
    )
  }
  const storage = path.join(options.dir, "storage")
  fs.mkdirSync(storage, { recursive: true })
  fs.writeFileSync(
    path.join(options.dir, "config.yml"),
    [
      "version: 0.1",
      "log:",
      "  level: info",
      "storage:",
      "  filesystem:",
      "    rootdirectory: /var/lib/registry",
      "http:",
      `  addr: ${where}`,
      ""
    ].join("\n")
  )
  yield* BaseImage.ensure()
  const name = containerName(options.namespace)
  const labels = { [registryLabel]: options.namespace }
  const previous = yield* docker.containers(labels).pipe(Effect.mapError(fail))
  yield* Effect.forEach(previous, (c) => docker.removeOwned(c.name, labels), { discard: true }).pipe(
    Effect.mapError(fail)
  )
  yield* docker.run({
    name,
    image: BaseImage.reference,
    entrypoint: [binary],
    cmd: ["serve", "/etc/tezt-cloud-registry/config.yml"],
    labels,
    network: "host",
    binds: [`${binary}:${binary}:ro`, `${options.dir}:/etc/tezt-cloud-registry:ro`, `${storage}:/var/lib/registry`],
    restart: true
  }).pipe(Effect.mapError(fail))
  yield* docker.waitForLog(name, /listening on/).pipe(
    Effect.timeout("30 seconds"),
    Effect.mapError(fail)
  )
  return where
})
