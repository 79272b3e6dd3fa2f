/**
 * The Docker engine, through `dockerode`: images (build, import, tag, push, remove), containers (run, exec,
 * logs, stop, remove), networks, and listings by label. Every call is an `Effect.fn("DockerClient.…")` that fails
 * with a `DockerError` whose `reason` says what happened.
 *
 * **Details**
 *
 * - The engine is the one `DOCKER_HOST` names (`unix://…` or `tcp://…`), else `/var/run/docker.sock`.
 * - Removing something that is already gone succeeds: removals are idempotent, as teardown and clean-up need.
 * - A container or network removed by name must carry the labels the caller names (its namespace's, the
 *   registry's): one of that name without them is someone else's, left alone (`NotOurs`). The check and the
 *   removal go by the id the check saw, so a name taken again in between is not removed either.
 * - Streams (build, import, push progress, followed logs) are destroyed when the calling fiber is interrupted.
 * - Filters by label are exact matches on `key=value` (never a name prefix): namespaces `a` and `ab` never meet.
 * - `dockerode` is loaded on a client's first call (`make` itself loads nothing): its tree (about 200 modules,
 *   gRPC's among them) costs about a tenth of a CPU-second, which a command that only lists the backends, or a
 *   run on another backend, must not pay. `probe` answers "no engine" without it when the socket file is missing.
 */
import type Docker from "dockerode"
import { Context, Effect, Layer } from "effect"
import * as child from "node:child_process"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import { PassThrough } from "node:stream"
import { fileURLToPath } from "node:url"
import * as DockerError from "./DockerError.ts"
import { childEnv } from "./internal/childEnv.ts"

/** The label every container, network and image of a run carries, with the namespace as value. */
export const namespaceLabel = "tezt-cloud.namespace"

/** How to reach the engine, from `DOCKER_HOST`. */
export const engineOptions = (env: Record<string, string | undefined> = process.env): Docker.DockerOptions => {
  const host = env.DOCKER_HOST
  if (host === undefined || host === "") return { socketPath: "/var/run/docker.sock" }
  if (host.startsWith("unix://")) return { socketPath: host.slice("unix://".length) }
  const url = new URL(host.replace(/^tcp:/, "http:"))
  return { host: url.hostname, port: Number(url.port || 2375), protocol: "http" }
}

/** A readable name of the engine for messages. */
export const engineLabel = (options: Docker.DockerOptions) =>
  options.socketPath !== undefined ? `unix://${options.socketPath}` : `tcp://${options.host}:${options.port}`

export interface RunSpec {
  readonly name: string
  readonly image: string
  /** Arguments to the image's entrypoint. */
  readonly cmd: ReadonlyArray<string>
  /** Replaces the image's entrypoint. */
  readonly entrypoint?: ReadonlyArray<string> | undefined
  readonly labels: Record<string, string>
  /** `"host"`, or the name of a network of ours. */
  readonly network: string
  /** Ports published on 127.0.0.1 one to one (only off the host network). */
  readonly publish?: { readonly start: number; readonly end: number } | undefined
  readonly capAdd?: ReadonlyArray<string> | undefined
  /** `KEY=value` entries of the container's environment. */
  readonly env?: ReadonlyArray<string> | undefined
  /** `host-path:container-path[:ro]` bind mounts. */
  readonly binds?: ReadonlyArray<string> | undefined
  /** Restart policy `unless-stopped` (long-lived services such as the registry). */
  readonly restart?: boolean | undefined
}

export interface Listed {
  readonly id: string
  readonly name: string
  readonly labels: Record<string, string>
}

export interface ExecOutput {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

export class DockerClient extends Context.Service<DockerClient, {
  /** `unix:///…` or `tcp://…`, for messages. */
  readonly engine: string
  readonly ping: Effect.Effect<void, DockerError.DockerError>
  /** `docker build` of `dockerfile` (relative to `context`), sending only the files of `context`. */
  build(options: {
    readonly context: string
    readonly dockerfile: string
    readonly tag: string
    readonly buildArgs: Record<string, string>
    readonly labels: Record<string, string>
    /** Told each step of the build as it starts (`Step 2/7 : RUN apt-get install …`). */
    readonly onStep?: ((step: string) => void) | undefined
  }): Effect.Effect<void, DockerError.DockerError>
  /** `docker import` of a root file system tarball as `reference`, with `labels`. */
  importImage(
    tarball: string,
    reference: string,
    labels?: Record<string, string>
  ): Effect.Effect<void, DockerError.DockerError>
  imageExists(reference: string): Effect.Effect<boolean, DockerError.DockerError>
  /** The labels of image `reference`, or `undefined` when the engine does not have it. */
  imageLabels(reference: string): Effect.Effect<Record<string, string> | undefined, DockerError.DockerError>
  tag(source: string, target: string): Effect.Effect<void, DockerError.DockerError>
  push(reference: string): Effect.Effect<void, DockerError.DockerError>
  /** Removes the tag `reference` (the image goes with its last tag; its parents, the build cache, stay). */
  removeImage(reference: string): Effect.Effect<void, DockerError.DockerError>
  /** Creates and starts a container; returns its id. */
  run(spec: RunSpec): Effect.Effect<string, DockerError.DockerError>
  exec(container: string, argv: ReadonlyArray<string>): Effect.Effect<ExecOutput, DockerError.DockerError>
  /** The container's output so far (stdout and stderr interleaved). */
  logs(container: string): Effect.Effect<string, DockerError.DockerError>
  /** Follows the container's output until it matches; returns the match; fails if the container stops first. */
  waitForLog(container: string, pattern: RegExp): Effect.Effect<string, DockerError.DockerError>
  /** The container's address on `network` (its first one when undefined). */
  address(container: string, network?: string): Effect.Effect<string, DockerError.DockerError>
  stop(container: string, graceSeconds: number): Effect.Effect<void, DockerError.DockerError>
  /** Kills and removes a container, by its id, with its anonymous volumes; a missing one is fine. */
  remove(id: string): Effect.Effect<void, DockerError.DockerError>
  /**
   * Kills and removes the container `name` with its anonymous volumes, if it carries every `key=value` of
   * `labels` (else `NotOurs`); a missing one is fine.
   */
  removeOwned(name: string, labels: Record<string, string>): Effect.Effect<void, DockerError.DockerError>
  createNetwork(name: string, labels: Record<string, string>): Effect.Effect<void, DockerError.DockerError>
  /** Removes the network `name` if it carries every `key=value` of `labels` (else `NotOurs`); a missing one is fine. */
  removeNetwork(name: string, labels: Record<string, string>): Effect.Effect<void, DockerError.DockerError>
  /** The labels of the container `name`, or `undefined` when there is none of that name. */
  labelsOf(name: string): Effect.Effect<Record<string, string> | undefined, DockerError.DockerError>
  /** Containers (running or not) whose labels include every `key=value` of `labels`. */
  containers(labels: Record<string, string>): Effect.Effect<ReadonlyArray<Listed>, DockerError.DockerError>
  networks(labels: Record<string, string>): Effect.Effect<ReadonlyArray<Listed>, DockerError.DockerError>
  /** Image tags whose image has every `key=value` of `labels`. */
  images(labels: Record<string, string>): Effect.Effect<ReadonlyArray<Listed>, DockerError.DockerError>
}>()("@tezt-cloud/docker/DockerClient") {}

const labelFilter = (labels: Record<string, string>) =>
  JSON.stringify({ label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) })

/** Exact-match check, on top of the engine's filter (which is exact too): belt and braces for clean-up. */
const matches = (have: Record<string, string> | undefined, want: Record<string, string>) =>
  Object.entries(want).every(([k, v]) => have?.[k] === v)

const missingIsFine = <A>(effect: Effect.Effect<A, DockerError.DockerError>) =>
  effect.pipe(Effect.catchIf((e) => e.reason._tag === "NotFound", () => Effect.void))

/**
 * The engine also finds a container or network by a prefix of its id: what it found must have the name asked for,
 * else there is none of that name.
 */
const sameName = (operation: string, kind: string, name: string, found: string) =>
  found === name ? Effect.void : Effect.fail(
    new DockerError.DockerError({
      operation,
      reason: new DockerError.NotFound({ message: `no ${kind} named ${name}` })
    })
  )

/** Fails with `NotOurs` unless `have` carries every label of `want`. */
const owned = (
  operation: string,
  kind: string,
  name: string,
  have: Record<string, string> | undefined,
  want: Record<string, string>
) =>
  matches(have, want) ? Effect.void : Effect.fail(
    new DockerError.DockerError({
      operation,
      reason: new DockerError.NotOurs({
        kind,
        name,
        expected: Object.entries(want).map(([k, v]) => `${k}=${v}`).join(", ")
      })
    })
  )

/**
 * Waits for a progress stream (build, import, push) to end; an `error` item fails it. `onStep` is told the build
 * steps among its output lines.
 */
const followProgress = (
  docker: Docker,
  operation: string,
  stream: NodeJS.ReadableStream,
  onStep?: (step: string) => void
) =>
  Effect.callback<void, DockerError.DockerError>((resume) => {
    let failure: string | undefined
    docker.modem.followProgress(
      stream,
      (err) => {
        const message = failure ?? (err ? String((err as Error).message ?? err) : undefined)
        resume(
          message === undefined
            ? Effect.void
            : Effect.fail(new DockerError.DockerError({ operation, reason: new DockerError.StreamFailed({ message }) }))
        )
      },
      (item: { error?: string; errorDetail?: { message?: string }; stream?: string }) => {
        if (item.error !== undefined) failure ??= item.errorDetail?.message ?? item.error
        if (onStep !== undefined && typeof item.stream === "string") {
          for (const line of item.stream.split("\n")) {
            if (/^Step \d+\/\d+ : /.test(line)) onStep(line.trim())
          }
        }
      }
    )
    return Effect.sync(() => (stream as unknown as { destroy?: () => void }).destroy?.())
  })

/**
 * A client of the engine `options` names (see `engineOptions`); `engine` names it in messages (an engine reached
 * through an `agent` of the caller's, e.g. over ssh, has no name `options` could tell).
 */
export const make = (
  options: Docker.DockerOptions = engineOptions(),
  engine: string = engineLabel(options)
): DockerClient["Service"] => {
  let client: Docker | undefined
  const engineClient = () => {
    client ??= new (createRequire(import.meta.url)("dockerode") as typeof Docker)(options)
    return client
  }
  const call = <A>(operation: string, f: () => Promise<A>) =>
    Effect.tryPromise({ try: f, catch: (e) => DockerError.fromCause(operation, e) })

  const removeContainer = (operation: string, id: string) =>
    call(operation, () => engineClient().getContainer(id).remove({ force: true, v: true })).pipe(
      // 409: a removal is already in progress; it will finish.
      Effect.catchIf((e) => e.reason._tag === "Refused" && e.reason.statusCode === 409, () => Effect.void)
    )

  return DockerClient.of({
    engine,
    ping: call("ping", () => engineClient().ping()).pipe(Effect.asVoid, Effect.withSpan("DockerClient.ping")),
    build: Effect.fn("DockerClient.build")(function*(o) {
      const operation = `build ${o.tag}`
      const stream = yield* call(
        operation,
        () =>
          engineClient().buildImage({ context: o.context, src: fs.readdirSync(o.context) }, {
            dockerfile: o.dockerfile,
            t: o.tag,
            buildargs: o.buildArgs,
            labels: o.labels,
            rm: true,
            forcerm: true
          })
      )
      yield* followProgress(engineClient(), operation, stream, o.onStep)
    }),
    importImage: Effect.fn("DockerClient.importImage")(function*(tarball, reference, labels = {}) {
      const operation = `import ${reference}`
      const [repo, tag] = splitReference(reference)
      // `changes`: Dockerfile instructions applied to the imported image (one LABEL with every label).
      const entries = Object.entries(labels)
      const changes = entries.length === 0
        ? {}
        : { changes: `LABEL ${entries.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ")}` }
      const stream = yield* call(operation, () => engineClient().importImage(tarball, { repo, tag, ...changes }))
      yield* followProgress(engineClient(), operation, stream)
    }),
    imageExists: Effect.fn("DockerClient.imageExists")(function*(reference) {
      return yield* call(`inspect ${reference}`, () => engineClient().getImage(reference).inspect()).pipe(
        Effect.as(true),
        Effect.catchIf((e) => e.reason._tag === "NotFound", () => Effect.succeed(false))
      )
    }),
    imageLabels: Effect.fn("DockerClient.imageLabels")(function*(reference) {
      return yield* call(`inspect ${reference}`, () => engineClient().getImage(reference).inspect()).pipe(
        Effect.map((info): Record<string, string> | undefined => info.Config?.Labels ?? {}),
        Effect.catchIf((e) => e.reason._tag === "NotFound", () => Effect.succeed(undefined))
      )
    }),
    tag: Effect.fn("DockerClient.tag")(function*(source, target) {
      const [repo, tag] = splitReference(target)
      yield* call(`tag ${source} ${target}`, () => engineClient().getImage(source).tag({ repo, tag }))
    }),
    push: Effect.fn("DockerClient.push")(function*(reference) {
      const operation = `push ${reference}`
      // The engine wants an X-Registry-Auth header even for registries without auth.
      const serveraddress = reference.includes("/") ? reference.slice(0, reference.indexOf("/")) : "docker.io"
      const stream = yield* call(
        operation,
        () => engineClient().getImage(reference).push({ authconfig: { serveraddress } })
      )
      yield* followProgress(engineClient(), operation, stream as unknown as NodeJS.ReadableStream)
    }),
    removeImage: Effect.fn("DockerClient.removeImage")(function*(reference) {
      // The untagged parents are the build cache (one image per Dockerfile step): pruned with the tag, the next run
      // would build every step again (about 2 s instead of 0.4 s for the agents' image).
      yield* missingIsFine(call(`rmi ${reference}`, () => engineClient().getImage(reference).remove({ noprune: true })))
    }),
    run: Effect.fn("DockerClient.run")(function*(spec) {
      const operation = `run ${spec.name}`
      const exposed: Record<string, {}> = {}
      const bindings: Record<string, Array<{ HostIp: string; HostPort: string }>> = {}
      if (spec.publish !== undefined && spec.network !== "host") {
        for (let p = spec.publish.start; p <= spec.publish.end; p++) {
          exposed[`${p}/tcp`] = {}
          bindings[`${p}/tcp`] = [{ HostIp: "127.0.0.1", HostPort: String(p) }]
        }
      }
      const container = yield* call(operation, () =>
        engineClient().createContainer({
          name: spec.name,
          Image: spec.image,
          Cmd: [...spec.cmd],
          ...(spec.entrypoint === undefined ? {} : { Entrypoint: [...spec.entrypoint] }),
          Labels: spec.labels,
          Env: [...(spec.env ?? [])],
          ExposedPorts: exposed,
          HostConfig: {
            NetworkMode: spec.network,
            PortBindings: bindings,
            ...(spec.binds === undefined ? {} : { Binds: [...spec.binds] }),
            ...(spec.restart ? { RestartPolicy: { Name: "unless-stopped" } } : {}),
            ...(spec.capAdd === undefined ? {} : { CapAdd: [...spec.capAdd] })
          }
        }))
      yield* call(operation, () => container.start())
      return container.id
    }),
    exec: Effect.fn("DockerClient.exec")(function*(container, argv) {
      const operation = `exec ${container} ${argv.join(" ")}`
      const exec = yield* call(
        operation,
        () => engineClient().getContainer(container).exec({ Cmd: [...argv], AttachStdout: true, AttachStderr: true })
      )
      const stream = yield* call(operation, () => exec.start({ hijack: true, stdin: false }))
      const out: Array<Buffer> = []
      const err: Array<Buffer> = []
      yield* Effect.callback<void>((resume) => {
        const stdout = new PassThrough().on("data", (d: Buffer) => out.push(d))
        const stderr = new PassThrough().on("data", (d: Buffer) => err.push(d))
        engineClient().modem.demuxStream(stream, stdout, stderr)
        stream.once("end", () => resume(Effect.void))
        stream.once("close", () => resume(Effect.void))
        return Effect.sync(() => (stream as unknown as { destroy: () => void }).destroy())
      })
      const info = yield* call(operation, () => exec.inspect())
      return {
        code: info.ExitCode ?? -1,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8")
      }
    }),
    logs: Effect.fn("DockerClient.logs")(function*(container) {
      const buffer = yield* call(
        `logs ${container}`,
        () => engineClient().getContainer(container).logs({ stdout: true, stderr: true, follow: false })
      )
      return demuxed(buffer)
    }),
    waitForLog: Effect.fn("DockerClient.waitForLog")(function*(container, pattern) {
      const operation = `logs ${container}`
      const stream = yield* call(
        operation,
        () => engineClient().getContainer(container).logs({ stdout: true, stderr: true, follow: true })
      )
      return yield* Effect.callback<string, DockerError.DockerError>((resume) => {
        let seen = ""
        const sink = new PassThrough().on("data", (d: Buffer) => {
          seen += d.toString("utf8")
          const match = pattern.exec(seen)
          if (match !== null) {
            const done = stream as unknown as { destroy: () => void }
            resume(Effect.succeed(match[0]))
            done.destroy()
          }
        })
        engineClient().modem.demuxStream(stream, sink, sink)
        stream.once("end", () =>
          resume(Effect.fail(
            new DockerError.DockerError({
              operation,
              reason: new DockerError.StreamFailed({
                message: `the container stopped before it was ready; its output:\n${seen.trim()}`
              })
            })
          )))
        return Effect.sync(() => (stream as unknown as { destroy: () => void }).destroy())
      })
    }),
    address: Effect.fn("DockerClient.address")(function*(container, network) {
      const info = yield* call(`inspect ${container}`, () => engineClient().getContainer(container).inspect())
      const networks = info.NetworkSettings.Networks
      const entry = network === undefined ? Object.values(networks)[0] : networks[network]
      if (entry === undefined || entry.IPAddress === "") {
        return yield* new DockerError.DockerError({
          operation: `inspect ${container}`,
          reason: new DockerError.NotFound({ message: `no address on ${network ?? "any network"}` })
        })
      }
      return entry.IPAddress
    }),
    stop: Effect.fn("DockerClient.stop")(function*(container, graceSeconds) {
      yield* missingIsFine(
        call(`stop ${container}`, () => engineClient().getContainer(container).stop({ t: graceSeconds })).pipe(
          // 304: already stopped.
          Effect.catchIf((e) => e.reason._tag === "Refused" && e.reason.statusCode === 304, () => Effect.void)
        )
      )
    }),
    remove: Effect.fn("DockerClient.remove")(function*(id) {
      yield* missingIsFine(removeContainer(`rm ${id}`, id))
    }),
    removeOwned: Effect.fn("DockerClient.removeOwned")(function*(name, labels) {
      const operation = `rm ${name}`
      yield* missingIsFine(Effect.gen(function*() {
        const info = yield* call(operation, () => engineClient().getContainer(name).inspect())
        yield* sameName(operation, "container", name, info.Name.replace(/^\//, ""))
        yield* owned(operation, "container", name, info.Config.Labels, labels)
        yield* removeContainer(operation, info.Id)
      }))
    }),
    labelsOf: Effect.fn("DockerClient.labelsOf")(function*(name) {
      return yield* call(`inspect ${name}`, () => engineClient().getContainer(name).inspect()).pipe(
        Effect.tap((info) => sameName(`inspect ${name}`, "container", name, info.Name.replace(/^\//, ""))),
        Effect.map((info): Record<string, string> | undefined => info.Config.Labels ?? {}),
        Effect.catchIf((e) => e.reason._tag === "NotFound", () => Effect.succeed(undefined))
      )
    }),
    createNetwork: Effect.fn("DockerClient.createNetwork")(function*(name, labels) {
      yield* call(`network create ${name}`, () => engineClient().createNetwork({ Name: name, Labels: labels }))
    }),
    removeNetwork: Effect.fn("DockerClient.removeNetwork")(function*(name, labels) {
      const operation = `network rm ${name}`
      yield* missingIsFine(Effect.gen(function*() {
        const info: Docker.NetworkInspectInfo = yield* call(operation, () => engineClient().getNetwork(name).inspect())
        yield* sameName(operation, "network", name, info.Name)
        yield* owned(operation, "network", name, info.Labels, labels)
        yield* call(operation, () => engineClient().getNetwork(info.Id).remove())
      }))
    }),
    containers: Effect.fn("DockerClient.containers")(function*(labels) {
      const list = yield* call("ps", () => engineClient().listContainers({ all: true, filters: labelFilter(labels) }))
      return list.filter((c) => matches(c.Labels, labels)).map((c) => ({
        id: c.Id,
        name: (c.Names[0] ?? c.Id).replace(/^\//, ""),
        labels: c.Labels ?? {}
      }))
    }),
    networks: Effect.fn("DockerClient.networks")(function*(labels) {
      const list = yield* call("network ls", () => engineClient().listNetworks({ filters: labelFilter(labels) }))
      return list.filter((n) => matches(n.Labels, labels)).map((n) => ({
        id: n.Id,
        name: n.Name,
        labels: n.Labels ?? {}
      }))
    }),
    images: Effect.fn("DockerClient.images")(function*(labels) {
      const list = yield* call("images", () => engineClient().listImages({ filters: labelFilter(labels) }))
      return list.filter((i) => matches(i.Labels ?? {}, labels)).flatMap((i) =>
        (i.RepoTags ?? []).filter((t) => t !== "<none>:<none>").map((name) => ({
          id: i.Id,
          name,
          labels: i.Labels ?? {}
        }))
      )
    })
  })
}

/** `repo[:tag]` → `[repo, tag]` (the tag defaults to `latest`; a registry port is not a tag). */
export const splitReference = (reference: string): readonly [string, string] => {
  const colon = reference.lastIndexOf(":")
  return colon > reference.lastIndexOf("/") ? [reference.slice(0, colon), reference.slice(colon + 1)] : [
    reference,
    "latest"
  ]
}

/** Decodes a non-tty log buffer: 8-byte frame headers, then payloads. */
const demuxed = (buffer: Buffer): string => {
  const parts: Array<Buffer> = []
  let offset = 0
  while (offset + 8 <= buffer.length) {
    const size = buffer.readUInt32BE(offset + 4)
    parts.push(buffer.subarray(offset + 8, offset + 8 + size))
    offset += 8 + size
  }
  return Buffer.concat(parts).toString("utf8")
}

/**
 * Whether an engine answers within `timeoutMillis` (for `--localhost` to choose its runtime); never fails.
 */
export const probe = (options: Docker.DockerOptions = engineOptions(), timeoutMillis = 1500) =>
  Effect.suspend(() =>
    // No socket file, no engine: said without loading `dockerode` (a proxy's machine, a host without Docker).
    options.socketPath !== undefined && !fs.existsSync(options.socketPath)
      ? Effect.succeed(false)
      : make(options).ping.pipe(
        Effect.timeout(timeoutMillis),
        Effect.as(true),
        Effect.catch(() => Effect.succeed(false))
      )
  ).pipe(Effect.withSpan("DockerClient.probe"))

/** The engine of `DOCKER_HOST` (or the default socket). */
export const layer = (options?: Docker.DockerOptions) => Layer.sync(DockerClient, () => make(options))

/**
 * Removes every container labelled `key=value` now, synchronously, giving up after `timeoutMillis`: the last
 * resort of an orchestrator that must exit at once. Returns how many went (0 when no engine answers in time).
 */
export const removeByLabelSync = (
  key: string,
  value: string,
  options: Docker.DockerOptions = engineOptions(),
  timeoutMillis = 5000
): number => {
  const engine = options.socketPath === undefined
    ? { host: options.host, port: options.port }
    : { socketPath: options.socketPath }
  const result = child.spawnSync(
    process.execPath,
    [fileURLToPath(new URL("internal/removeByLabel.mjs", import.meta.url)), JSON.stringify(engine), key, value],
    { encoding: "utf8", timeout: timeoutMillis, stdio: ["ignore", "pipe", "ignore"], env: childEnv() }
  )
  const removed = Number(result.stdout)
  return Number.isInteger(removed) ? removed : 0
}
