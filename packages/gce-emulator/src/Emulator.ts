/**
 * A GCE emulator: the Compute REST API, the Cloud DNS methods a deployment uses (and its admin API) served on `host:port`, its instances realized by the
 * `Hosts` in context, faults from the `Faults` in context. Everything it made goes when its scope closes: the
 * Operations' work is interrupted, and the `Hosts` layer removes the hosts it realized.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Context, Effect, Layer, Schema, type Scope } from "effect"
import { HttpRouter, HttpServer } from "effect/http"
import * as http from "node:http"
import * as AddressPool from "./AddressPool.ts"
import * as Api from "./Api.ts"
import * as Compute from "./Compute.ts"
import * as Dns from "./Dns.ts"
import { Faults } from "./Faults.ts"
import { Hosts } from "./Hosts.ts"
import * as Links from "./Links.ts"
import * as Server from "./Server.ts"

/** The emulator could not start. */
export class StartFailed extends Schema.TaggedError<StartFailed>()("StartFailed", { message: Schema.String }) {}

export interface Options {
  /** Where to listen; `127.0.0.1` by default. */
  readonly host?: string | undefined
  /** `0`: any free port. */
  readonly port: number
  readonly addresses?: AddressPool.Range | undefined
}

export interface Emulator {
  /** `http://127.0.0.1:P`, what `TEZT_CLOUD_GCP_ENDPOINT` is set to. */
  readonly url: string
}

export const serve = Effect.fn("Emulator.serve")(function*(
  options: Options
): Effect.fn.Return<Emulator, StartFailed, Scope.Scope | Hosts | Faults> {
  const host = options.host ?? "127.0.0.1"
  const hosts = yield* Hosts
  const faults = yield* Faults
  const api = yield* Effect.try({
    try: Api.load,
    catch: (e) => new StartFailed({ message: `cannot read the Compute API definitions: ${String(e)}` })
  })
  const serverContext = yield* Layer.build(
    NodeHttpServer.layer(() => http.createServer(), { host, port: options.port })
  )
    .pipe(
      Effect.mapError((e) =>
        new StartFailed({
          message: `cannot listen on ${host}:${options.port} (${String(e.cause ?? e)}): choose another --port`
        })
      )
    )
  const address = Context.get(serverContext, HttpServer.HttpServer).address
  const url = `http://${host}:${"port" in address ? address.port : options.port}`
  const pool = AddressPool.make(options.addresses ?? AddressPool.defaultRange, hosts.free)
  const compute = yield* Compute.make(Links.make(url), pool)
  const dns = yield* Dns.make()
  yield* Layer.build(
    HttpRouter.serve(Server.routes(api, compute, dns, faults), { disableLogger: true, disableListenLog: true }).pipe(
      Layer.provide(Layer.succeedContext(serverContext))
    )
  )
  return { url }
})

/** A running emulator as a service, for tests of code that talks to it (e.g. a GCP backend). */
export class GceEmulator extends Context.Service<GceEmulator, Emulator>()("@tezt-cloud/gce-emulator/GceEmulator") {
  /** Serves an emulator for the layer's lifetime (its hosts and faults from context). */
  static readonly layer = (options: Options) => Layer.effect(GceEmulator, serve(options))
}
