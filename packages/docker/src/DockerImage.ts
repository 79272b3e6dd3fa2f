/**
 * Agent images: `dockerfiles/<alias>.Dockerfile` built with Tezt cloud's automatic build args, once per
 * `(image, args)` per run, tagged for the run and labelled with its namespace.
 *
 * **Details**
 *
 * - Automatic args: `SSH_PUBLIC_KEY` (the run's key, for root's `authorized_keys`: its type and blob only; the
 *   comment, which names the namespace, would make every namespace's build of the same key differ, and miss the
 *   build cache),
 *   `BINARIES_DESTINATION_PATH` (the agent's binaries path) and `COMMIT` (`git rev-parse HEAD`, when in a git
 *   checkout); an agent's `dockerBuildArgs` override them.
 * - The build context is the `dockerfiles/` directory: a Dockerfile `COPY`s from there.
 * - The namespace's alias (the default) falls back to `debian.Dockerfile` when `<ns>.Dockerfile` is missing.
 * - The run's tag is `teztcloud-<ns>-<alias>:<hash of the args>`; teardown removes it (the build cache stays, so the
 *   next run builds in about a second).
 * - An Octez release image is not built here yet.
 */
import { type AgentConfig, CloudError, Ledger, Teardown } from "@tezt-cloud/core"
import { Effect, Semaphore } from "effect"
import * as child from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { DockerClient, namespaceLabel } from "./DockerClient.ts"
import { childEnv } from "./internal/childEnv.ts"

/** `dockerfiles/` of the project: `$TEZT_CLOUD_DOCKERFILES`, else `./dockerfiles`. */
export const dockerfilesDir = (env: Record<string, string | undefined> = process.env) =>
  path.resolve(env.TEZT_CLOUD_DOCKERFILES ?? "dockerfiles")

/** `git rev-parse HEAD` of the working directory, when there is one. */
const commit = (): string | undefined => {
  const r = child.spawnSync("git", ["rev-parse", "HEAD"], { encoding: "utf8", timeout: 2000, env: childEnv(/^GIT_/) })
  return r.status === 0 ? r.stdout.trim() : undefined
}

/** The build args of an agent: the automatic ones, overridden by its own. */
export const buildArgs = (
  agent: AgentConfig.AgentConfig,
  sshPublicKey: string,
  head: string | undefined = commit()
): Record<string, string> => ({
  SSH_PUBLIC_KEY: sshPublicKey.split(" ").slice(0, 2).join(" "),
  BINARIES_DESTINATION_PATH: agent.binariesPath,
  ...(head === undefined ? {} : { COMMIT: head }),
  ...agent.dockerBuildArgs
})

/** A lower-case docker name part from anything. */
const dockerName = (s: string) => s.toLowerCase().replace(/[^a-z0-9._-]/g, "-")

/** The run's tag of an alias built with `args`. */
export const tagFor = (namespace: string, alias: string, args: Record<string, string>) => {
  // The namespace and alias are hashed too: two (namespace, alias) pairs of the same docker name (`A` and `a`,
  // or `a` + `b-x` and `a-b` + `x`) never share a tag, which a run's teardown removes.
  const hash = crypto.createHash("sha256")
    .update(JSON.stringify([namespace, alias, Object.entries(args).toSorted()]))
    .digest("hex")
  return `teztcloud-${dockerName(namespace)}-${dockerName(alias)}:${hash.slice(0, 12)}`
}

/** The alias shipped with the project, used when the namespace (the default alias) has no Dockerfile. */
export const defaultAlias = "debian"

/**
 * The Dockerfile of an alias, or an error pointing at the README. The namespace's alias (the default one) falls
 * back to `debian.Dockerfile` when `<ns>.Dockerfile` does not exist.
 */
export const dockerfile = (alias: string, dir: string = dockerfilesDir(), namespace?: string) => {
  const file = path.join(dir, `${alias}.Dockerfile`)
  if (fs.existsSync(file)) return Effect.succeed(file)
  const fallback = path.join(dir, `${defaultAlias}.Dockerfile`)
  return alias === namespace && fs.existsSync(fallback)
    ? Effect.logInfo(`no ${path.basename(file)}: agents use ${defaultAlias}.Dockerfile`).pipe(Effect.as(fallback))
    : Effect.fail(CloudError.config(
      "--dockerfile-alias",
      `${file} does not exist: write it (see dockerfiles/README.md) or pick another alias (debian ships)`
    ))
}

export interface Builder {
  /** Builds (once per run per tag) and returns the run's tag; the tag is removed when the run's scope closes. */
  readonly image: (
    alias: string,
    args: Record<string, string>
  ) => Effect.Effect<string, CloudError.CloudError, import("effect").Scope.Scope>
}

/**
 * A builder for one run: concurrent requests for the same `(alias, args)` wait for one build. Each tag is
 * recorded in the Ledger (kind `docker-image`) before it is built, and removed by the run's scope.
 */
export const builder = Effect.fn("DockerImage.builder")(function*(
  namespace: string,
  dir: string = dockerfilesDir(),
  /** Added to the ledger records: the engine, when not this machine's (see `DockerAgents.Remote`). */
  recordFields: Record<string, string> = {}
) {
  const docker = yield* DockerClient
  const ledger = yield* Ledger.Ledger
  const lock = yield* Semaphore.make(1)
  const built = new Map<string, string>()
  return {
    image: (alias, args) =>
      lock.withPermits(1)(Effect.gen(function*() {
        const tag = tagFor(namespace, alias, args)
        if (built.has(tag)) return tag
        const file = yield* dockerfile(alias, dir, namespace)
        // A first build takes tens of seconds: each step is shown as it starts (the log is synchronous).
        const log = Effect.runSyncWith(yield* Effect.context<never>())
        const started = Date.now()
        yield* Effect.logInfo(`image ${alias}: building ${path.basename(file)} as ${tag}`)
        yield* Ledger.scoped(
          { id: `docker-image:${tag}`, kind: "docker-image", data: { tag, namespace, ...recordFields } },
          docker.build({
            context: dir,
            dockerfile: path.basename(file),
            tag,
            buildArgs: args,
            labels: { [namespaceLabel]: namespace },
            onStep: (step) =>
              log(Effect.logInfo(`image ${alias}: ${step.length > 160 ? `${step.slice(0, 160)}…` : step}`))
          }).pipe(Effect.mapError((e) => CloudError.deploy(`image ${alias}`, e.message, { cause: e }))),
          () => Teardown.step(`image ${tag}`, docker.removeImage(tag))
        ).pipe(Effect.provideService(Ledger.Ledger, ledger))
        built.set(tag, tag)
        yield* Effect.logInfo(`image ${alias}: built in ${((Date.now() - started) / 1000).toFixed(1)}s`)
        return tag
      }))
  } satisfies Builder
})
