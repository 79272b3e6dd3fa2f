/**
 * Instances realized as Docker containers of the agents' image (`dockerfiles/debian.Dockerfile`, built at
 * start-up on top of the base image): one container per instance on the host network, its sshd listening on
 * the instance's own loopback address (`ListenAddress 127.0.0.N`) at the hosts' port, root's authorized keys
 * taken from the instance's `ssh-keys` metadata at start, as GCE's guest agent does.
 *
 * **Details**
 *
 * - Every container carries the label `tezt-cloud.gce-emulator=<emulator id>`; when the layer's scope closes
 *   (the emulator stops, also on SIGINT/SIGTERM) every container with its label is removed, whatever the
 *   Operations were doing. `docker rm -f $(docker ps -aq --filter label=tezt-cloud.gce-emulator)` removes what
 *   a killed emulator left.
 * - The image is tagged `tezt-cloud-gce-emulator:latest` and kept (the build cache makes the next start fast).
 */
import { BaseImage, DockerClient, DockerImage } from "@tezt-cloud/docker"
import { Effect, Layer } from "effect"
import * as crypto from "node:crypto"
import { bindable, HostFailed, Hosts } from "./Hosts.ts"

/** The label of the emulator's containers (value: the emulator's id). */
export const label = "tezt-cloud.gce-emulator"

/** The tag of the image built when none is given. */
export const imageTag = "tezt-cloud-gce-emulator:latest"

export interface Options {
  /** Names the emulator's containers and their label value. */
  readonly id: string
  /** The sshd port of every host (the agents' `--vm-base-port`). */
  readonly port: number
  /** An image with sshd and the project's image contract; built from `dockerfiles` when undefined. */
  readonly image?: string | undefined
  /** The directory of `debian.Dockerfile`; `$TEZT_CLOUD_DOCKERFILES` or `./dockerfiles` by default. */
  readonly dockerfiles?: string | undefined
  /** How long a host may take to answer (default 60 s). */
  readonly readyTimeoutMillis?: number | undefined
}

/** The shell line a host runs: authorize the keys, then sshd on the instance's address. */
export const startScript = (address: string, port: number) =>
  [
    `printf '%s\\n' "$SSH_KEYS" > /root/.ssh/authorized_keys`,
    "chmod 600 /root/.ssh/authorized_keys",
    `exec /usr/sbin/sshd -D -e -p ${port} -o ListenAddress=${address} -o PidFile=/run/sshd.emulator.pid`
  ].join(" && ")

const failed = (what: string) => (e: { readonly message: string }) =>
  new HostFailed({ message: `${what}: ${e.message}` })

/** The image hosts run: `options.image`, else the agents' image built now. */
const image = Effect.fn("DockerHosts.image")(function*(options: Options) {
  if (options.image !== undefined) return options.image
  const docker = yield* DockerClient.DockerClient
  yield* BaseImage.ensure().pipe(Effect.mapError(failed("base image")))
  const dir = options.dockerfiles ?? DockerImage.dockerfilesDir()
  yield* docker.build({
    context: dir,
    dockerfile: `${DockerImage.defaultAlias}.Dockerfile`,
    tag: imageTag,
    buildArgs: { SSH_PUBLIC_KEY: "" },
    labels: { [label]: "image" }
  }).pipe(Effect.mapError(failed(`build of ${dir}/${DockerImage.defaultAlias}.Dockerfile`)))
  return imageTag
})

/** Removes every container of emulator `id`; returns how many there were. */
export const removeAll = Effect.fn("DockerHosts.removeAll")(function*(id: string) {
  const docker = yield* DockerClient.DockerClient
  const containers = yield* docker.containers({ [label]: id })
  yield* Effect.forEach(containers, (c) => docker.remove(c.id), { concurrency: 8, discard: true })
  return containers.length
})

export const layer = (options: Options) =>
  Layer.effect(
    Hosts,
    Effect.gen(function*() {
      const docker = yield* DockerClient.DockerClient
      yield* docker.ping.pipe(
        Effect.mapError((e) =>
          new HostFailed({
            message: `no Docker engine at ${docker.engine} (${e.message}): start one, or use --no-hosts`
          })
        )
      )
      const ref = yield* image(options)
      yield* Effect.addFinalizer(() =>
        removeAll(options.id).pipe(
          Effect.tap((n) => n > 0 ? Effect.logInfo(`removed ${n} host${n === 1 ? "" : "s"}`) : Effect.void),
          Effect.ignore
        )
      )
      const readyTimeout = options.readyTimeoutMillis ?? 60_000
      return Hosts.of({
        kind: "docker",
        port: options.port,
        realize: Effect.fn("DockerHosts.realize")(function*(spec) {
          const suffix = crypto.createHash("sha256").update(spec.instance).digest("hex").slice(0, 6)
          const id = yield* docker.run({
            name: `${options.id}-${spec.name}-${suffix}`,
            image: ref,
            entrypoint: ["/bin/sh", "-c"],
            cmd: [startScript(spec.address, options.port)],
            labels: { [label]: options.id, [`${label}.instance`]: spec.instance },
            network: "host",
            env: [`SSH_KEYS=${spec.sshKeys.join("\n")}`]
          }).pipe(Effect.mapError(failed("container")))
          yield* docker.waitForLog(id, /Server listening on \S+ port \d+/).pipe(
            Effect.timeoutOrElse({
              duration: readyTimeout,
              orElse: () => Effect.fail(new HostFailed({ message: `sshd did not answer within ${readyTimeout} ms` }))
            }),
            Effect.mapError(failed(`sshd on ${spec.address}:${options.port}`)),
            Effect.onExit((exit) => exit._tag === "Success" ? Effect.void : Effect.ignore(docker.remove(id)))
          )
          return { id, address: spec.address }
        }),
        kill: (host) => Effect.ignore(docker.stop(host.id, 0)),
        remove: (host) => Effect.ignore(docker.remove(host.id)),
        free: (address) => bindable(address, options.port)
      })
    })
  )
