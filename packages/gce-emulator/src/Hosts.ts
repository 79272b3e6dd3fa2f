/**
 * Where instances run. The emulator asks for a host per instance at its own loopback address; `layerNone`
 * realizes nothing (the API alone, for tests of its shape and for machines without Docker).
 */
import { Context, Effect, Layer, Schema } from "effect"
import * as net from "node:net"

/** The host of an instance could not be made or reached. */
export class HostFailed extends Schema.TaggedError<HostFailed>()("HostFailed", { message: Schema.String }) {}

export interface Spec {
  /** The instance's path, `projects/p/zones/z/instances/i`. */
  readonly instance: string
  readonly name: string
  /** Its own loopback address, where its sshd listens. */
  readonly address: string
  /** Public keys to authorize (from the `ssh-keys` metadata). */
  readonly sshKeys: ReadonlyArray<string>
}

export interface Host {
  readonly id: string
  readonly address: string
}

export class Hosts extends Context.Service<Hosts, {
  /** `docker` or `none`, for messages. */
  readonly kind: string
  /** The port each host's sshd listens on. */
  readonly port: number
  /** Makes the host and waits until its sshd answers; interrupted, it leaves nothing behind. */
  realize(spec: Spec): Effect.Effect<Host, HostFailed>
  /** Kills the host (a crash); it stays until `remove`. */
  kill(host: Host): Effect.Effect<void>
  /** Removes the host; removing a gone host succeeds. */
  remove(host: Host): Effect.Effect<void>
  /** Whether nobody listens on `address` at the hosts' port (someone else's process may hold it). */
  free(address: string): Effect.Effect<boolean>
}>()("@tezt-cloud/gce-emulator/Hosts") {}

/** Whether `address:port` can be bound right now. */
export const bindable = (address: string, port: number) =>
  Effect.callback<boolean>((resume) => {
    const server = net.createServer()
    server.once("error", () => resume(Effect.succeed(false)))
    server.listen({ host: address, port, exclusive: true }, () => server.close(() => resume(Effect.succeed(true))))
  })

/** No hosts: instances are API resources only. */
export const layerNone = (port = 30000) =>
  Layer.succeed(
    Hosts,
    Hosts.of({
      kind: "none",
      port,
      realize: (spec) => Effect.succeed({ id: `none:${spec.instance}`, address: spec.address }),
      kill: () => Effect.void,
      remove: () => Effect.void,
      free: () => Effect.succeed(true)
    })
  )
